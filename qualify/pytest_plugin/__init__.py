"""The pytest plugin that runs qualify plans: one item per step across all DUTs."""
