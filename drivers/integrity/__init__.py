"""Data integrity of our own: LBA-stamped blocks regenerated from (seed, generation), verified in place."""

from drivers.integrity.pattern import (
    CHECKS,
    HEADER_BYTES,
    MAGIC,
    BlockHeader,
    Check,
    Finding,
    FindingKind,
    bad_blocks,
    decode_header,
    expected_words,
    generate,
    generate_into,
    verify,
)

__all__ = [
    "CHECKS",
    "HEADER_BYTES",
    "MAGIC",
    "BlockHeader",
    "Check",
    "Finding",
    "FindingKind",
    "bad_blocks",
    "decode_header",
    "expected_words",
    "generate",
    "generate_into",
    "verify",
]
