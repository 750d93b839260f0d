"""The `qualify` command line: thin commands over the library."""

from qualify.cli.app import app, main

__all__ = ["app", "main"]
