"""The SQLite results store."""
