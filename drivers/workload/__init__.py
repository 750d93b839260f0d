"""Block workloads: the spec/result contract (spec), fio job builders (jobs), the fio driver (fio)."""
