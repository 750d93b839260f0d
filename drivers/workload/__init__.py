"""Block workloads: what to run (spec) and what came back (result), for fio and the simulator."""
