"""Deterministic noise for the simulated lab: the same seed and key give the same value.

Values derive from blake2b over the seed and the key, never from Python's `hash()` (salted per
process) or a shared random stream (order-dependent), so a resumed run in a new process reads
exactly what an uninterrupted run would have read at the same virtual time.
"""

from __future__ import annotations

import hashlib
import math
import struct

# 53 bits fill a double's mantissa exactly, so every uniform is representable.
_MANTISSA_BITS = 53


def _digest(seed: int, key: tuple[object, ...]) -> bytes:
    """Return 16 bytes that depend only on the seed and the key's repr."""
    # repr of ints, strings and floats is stable across processes and platforms (floats use the
    # shortest round-tripping form), which is what makes the key portable.
    material = repr((int(seed), *key)).encode("utf-8")
    return hashlib.blake2b(material, digest_size=16).digest()


def uniform(seed: int, *key: object) -> float:
    """Return a deterministic float in the open interval (0, 1) for `seed` and `key`."""
    (word,) = struct.unpack(">Q", _digest(seed, key)[:8])
    return ((word >> (64 - _MANTISSA_BITS)) + 0.5) / (1 << _MANTISSA_BITS)


def gauss(seed: int, *key: object, sigma: float = 1.0) -> float:
    """Return a deterministic normal deviate with mean 0 and standard deviation `sigma`."""
    digest = _digest(seed, key)
    first, second = struct.unpack(">QQ", digest)
    u1 = ((first >> (64 - _MANTISSA_BITS)) + 0.5) / (1 << _MANTISSA_BITS)
    u2 = ((second >> (64 - _MANTISSA_BITS)) + 0.5) / (1 << _MANTISSA_BITS)
    # Box-Muller: two uniforms from one digest give one normal deviate without any state.
    return sigma * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
