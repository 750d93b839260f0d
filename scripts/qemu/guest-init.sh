#!/bin/sh
# Guest side of the QEMU NVMe test, run by the image's boot stub from the payload disk: run
# qualify's NVMe checks and report on the second serial port (ttyS1); the stub powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PYTHONPATH=/payload
# The payload is mounted read-only; no byte-code cache to write.
export PYTHONDONTWRITEBYTECODE=1
exec python3 /payload/guest_checks.py --out /dev/ttyS1 2>/dev/ttyS0
