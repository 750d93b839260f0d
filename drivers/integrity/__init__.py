"""Data integrity of our own: LBA-stamped blocks regenerated from (seed, generation), verified in place."""

from drivers.integrity.pattern import (
    HEADER_BYTES,
    MAGIC,
    BlockHeader,
    Finding,
    FindingKind,
    decode_header,
    expected_words,
    generate,
    verify,
)

__all__ = [
    "HEADER_BYTES",
    "MAGIC",
    "BlockHeader",
    "Finding",
    "FindingKind",
    "decode_header",
    "expected_words",
    "generate",
    "verify",
]
