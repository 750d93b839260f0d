"""qualify: qualification harness for DDR5 RDIMMs and NVMe SSDs."""

__version__ = "0.1.0"
