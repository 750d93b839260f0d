"""The engine: runs plan items across DUTs, judges, records and checkpoints."""
