"""qualify: qualification harness for DDR5 RDIMMs and NVMe SSDs.

PYTEST_DONT_REWRITE: the CLI imports this package before pytest loads its plugin (the pytest11
entry point), so pytest could not rewrite it and warned so on every run; nothing here asserts.
"""

__version__ = "0.1.0"
