"""crc32c of a concatenation from the crcs of its parts, and the crc of a run of stamped blocks.

crc32c as `crc32c.crc32c` computes it (Castagnoli polynomial, bit-reflected, initial value and
final xor 0xFFFFFFFF) obeys crc(A || B) = zeros_map(len(B))(crc(A)) ^ crc(B), where `zeros_map(n)`
feeds n zero bytes through the bare register: a GF(2)-linear map of 32-bit values (the initial
value and the final xor cancel). So the crc32c of a run of blocks that each store the crc32c of
their own tail is known from the stored crcs alone, and one hardware crc32c over the whole run
checks every stored crc of it at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import crc32c
import numpy as np
import numpy.typing as npt

_POLY = 0x82F63B78  # the Castagnoli polynomial, bit-reflected
_IDENTITY = tuple(1 << bit for bit in range(32))

LinearMap = tuple[int, ...]  # a GF(2)-linear map of 32-bit values: the images of bits 0 .. 31
U32s = npt.NDArray[np.uint32]


def apply(linear: LinearMap, value: int) -> int:
    """Return `linear` applied to the 32-bit `value`."""
    out = 0
    for image in linear:
        if value & 1:
            out ^= image
        value >>= 1
    return out


def compose(outer: LinearMap, inner: LinearMap) -> LinearMap:
    """Return the map that applies `inner`, then `outer`."""
    return tuple(apply(outer, image) for image in inner)


def _one_zero_byte() -> LinearMap:
    """Return the map of one zero byte through the bare register: eight shifts, each xoring the polynomial."""

    def step(register: int) -> int:
        for _ in range(8):
            register = (register >> 1) ^ (_POLY if register & 1 else 0)
        return register

    return tuple(step(image) for image in _IDENTITY)


_ONE_ZERO_BYTE = _one_zero_byte()


@functools.lru_cache(maxsize=64)
def _zeros_map_pow2(log2_bytes: int) -> LinearMap:
    """Return the map of 2**log2_bytes zero bytes, each the square of the one before."""
    if log2_bytes == 0:
        return _ONE_ZERO_BYTE
    half = _zeros_map_pow2(log2_bytes - 1)
    return compose(half, half)


@functools.lru_cache(maxsize=64)
def zeros_map(n_bytes: int) -> LinearMap:
    """Return the map that feeds `n_bytes` zero bytes through the bare crc32c register."""
    if n_bytes < 0:
        raise ValueError(f"a length is at least 0 (got {n_bytes})")
    result = _IDENTITY
    for log2_bytes in range(n_bytes.bit_length()):
        if n_bytes >> log2_bytes & 1:
            result = compose(_zeros_map_pow2(log2_bytes), result)
    return result


def combine(crc_a: int, crc_b: int, len_b_bytes: int) -> int:
    """Return crc32c(A || B) from crc32c(A), crc32c(B) and the length of B."""
    return apply(zeros_map(len_b_bytes), crc_a) ^ crc_b


def byte_tables(maps: list[LinearMap] | U32s) -> U32s:
    """Return tables[i, b, v] = maps[i] applied to v << 8b, of shape (len(maps), 4, 256).

    A map applied to a 32-bit value is then the xor of four lookups, one per byte of the value.
    """
    images = np.asarray(maps, dtype=np.uint32).reshape(len(maps), 4, 8)
    tables = np.zeros((len(maps), 4, 1), dtype=np.uint32)
    for bit in range(8):  # entries with this bit set are the ones so far, xor the bit's image
        tables = np.concatenate([tables, tables ^ images[:, :, bit : bit + 1]], axis=2)
    return tables


def _apply_tables(tables: U32s, values: U32s) -> U32s:
    """Return the map whose (4, 256) byte tables these are, applied to every value."""
    out = tables[0][values & 0xFF]
    for b in range(1, 4):
        out ^= tables[b][(values >> np.uint32(8 * b)) & 0xFF]
    return out


@dataclass(frozen=True)
class RunPlan:
    """How to predict the crc32c of a run of up to `rows` blocks from the crc each block stores.

    Every block is `head` (4 bytes), its stored crc (4 bytes, little-endian), then a tail whose
    crc32c is the stored crc if the block is sound. The run's crc is then an xor of a constant
    and of one table lookup per byte of each stored crc.
    """

    rows: int
    block_bytes: int
    tables: U32s  # flat: row i's table for byte b of its stored crc starts at (i * 4 + b) * 256
    offsets: npt.NDArray[np.intp]  # (i * 4 + b) * 256 for every row i and byte b
    constants: U32s  # constants[n]: the part of an n-block run's crc that no stored crc changes

    def predict(self, stored: U32s) -> U32s:
        """Return the crc32c each run of blocks must have, given their stored crcs (runs, n ≤ rows).

        A shorter run uses the last n rows' tables: a row's table depends only on how many
        blocks follow it.
        """
        runs, n = stored.shape
        if not 0 < n <= self.rows:
            raise ValueError(f"a run has 1 .. {self.rows} blocks (got {n})")
        crc_bytes = np.ascontiguousarray(stored, dtype="<u4").view(np.uint8).reshape(runs, n * 4)
        index = crc_bytes + self.offsets[(self.rows - n) * 4 :]  # intp + uint8: intp
        lookups = np.take(self.tables, index)
        return np.bitwise_xor.reduce(lookups, axis=1) ^ self.constants[n]


@functools.lru_cache(maxsize=16)
def run_plan(head: bytes, block_bytes: int, rows: int) -> RunPlan:
    """Return the plan that predicts the crc32c of runs of up to `rows` blocks of `block_bytes`."""
    if len(head) != 4 or block_bytes < 8 or rows < 1:
        raise ValueError("a run plan needs a 4-byte head, blocks of at least 8 bytes and 1+ rows")
    # The crc of head || s is affine in the stored crc s: a constant, xor a linear part.
    head_crc = crc32c.crc32c(head + bytes(4))
    head_linear = tuple(crc32c.crc32c(head + image.to_bytes(4, "little")) ^ head_crc for image in _IDENTITY)
    # crc(block) = tail(crc(head || s)) ^ crc(its tail), and crc(its tail) = s in a sound block:
    # so a sound block's crc is last(s) ^ last_constant.
    tail = zeros_map(block_bytes - 8)
    last = tuple(apply(tail, image) ^ own for image, own in zip(head_linear, _IDENTITY, strict=True))
    last_constant = apply(tail, head_crc)
    # A block followed by d blocks enters the run's crc through zeros_map(block_bytes) d times:
    # images[d] holds that map's images of bits 0 .. 31 (column 32: the constant), found for d in
    # [n, 2n) from those for [0, n) with one map, zeros_map(n * block_bytes).
    images = np.empty((rows, 33), dtype=np.uint32)
    images[0, :32], images[0, 32] = last, last_constant
    done = 1
    while done < rows:
        more = min(done, rows - done)
        images[done : done + more] = _apply_tables(
            byte_tables([zeros_map(done * block_bytes)])[0], images[:more]
        )
        done += more
    tables = byte_tables(images[::-1, :32])
    constants = np.zeros(rows + 1, dtype=np.uint32)
    constants[1:] = np.bitwise_xor.accumulate(images[:, 32])
    return RunPlan(
        rows=rows,
        block_bytes=block_bytes,
        tables=tables.reshape(-1),
        offsets=np.arange(rows * 4, dtype=np.intp) * 256,
        constants=constants,
    )
