"""Station files and their binding to live instruments and DUTs."""
