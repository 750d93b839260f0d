"""Tests that run real command-line tools (fio, stressapptest, memtester) and their parsers."""
