"""The factory station service: queue, schedules, slots, resume, status page, operator scans."""
