"""The source offsets of pending join entries, kept as a compact bitmap.

On restore the Kafka edge re-reads each input partition from ``lowest()`` and
re-inserts the entries whose offsets the set contains. Adding and discarding are
O(1) (amortised); ``lowest()`` never scans the whole set.

>>> pending = OffsetSet()
>>> for offset in (105, 101, 103):
...     pending.add(offset)
>>> pending.discard(101)
>>> pending.lowest(), len(pending), 103 in pending, 101 in pending
(103, 2, True, False)
>>> list(OffsetSet.from_bytes(pending.to_bytes()))
[103, 105]
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Final

__all__ = ["OffsetSet"]

_HEADER: Final = struct.Struct(">qq")  # base offset, count


class OffsetSet:
    """A set of non-negative offsets: bit ``i`` of the bitmap is ``base + i``."""

    __slots__ = ("_base", "_bits", "_count", "_low")

    def __init__(self) -> None:
        self._base = 0
        self._bits = bytearray()
        self._count = 0
        self._low = 0  # no set bit below this index (a lower bound, moved lazily)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, offset: object) -> bool:
        if not isinstance(offset, int):
            return False
        i = offset - self._base
        if i < 0 or i >= len(self._bits) * 8:
            return False
        return bool(self._bits[i >> 3] & (1 << (i & 7)))

    def __iter__(self) -> Iterator[int]:
        base, bits = self._base, self._bits
        for byte_index in range(self._low >> 3, len(bits)):
            byte = bits[byte_index]
            while byte:
                low_bit = byte & -byte
                yield base + (byte_index << 3) + low_bit.bit_length() - 1
                byte ^= low_bit

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OffsetSet) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OffsetSet(count={self._count}, lowest={self.lowest()})"

    def add(self, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"offset must be non-negative, got {offset}")
        if self._count == 0:
            self._base = offset & ~7
            self._bits = bytearray()
            self._low = 0
        elif offset < self._base:
            # Out of order below everything we hold: rare, so a copy is fine.
            new_base = offset & ~7
            self._bits[:0] = bytes((self._base - new_base) >> 3)
            self._low += self._base - new_base
            self._base = new_base
        i = offset - self._base
        byte_index = i >> 3
        if byte_index >= len(self._bits):
            self._bits.extend(bytes(byte_index + 1 - len(self._bits)))
        mask = 1 << (i & 7)
        if self._bits[byte_index] & mask:
            return
        self._bits[byte_index] |= mask
        self._count += 1
        self._low = min(self._low, i)

    def discard(self, offset: int) -> None:
        i = offset - self._base
        if i < 0 or i >= len(self._bits) * 8:
            return
        byte_index = i >> 3
        mask = 1 << (i & 7)
        if not self._bits[byte_index] & mask:
            return
        self._bits[byte_index] &= ~mask
        self._count -= 1
        if self._count == 0:
            self._bits = bytearray()
            self._low = 0
        elif i == self._low:
            self._advance()

    def _advance(self) -> None:
        # Move _low to the lowest set bit, then drop leading empty bytes once they
        # are the larger half (amortised O(1) per offset).
        bits = self._bits
        byte_index = self._low >> 3
        while not bits[byte_index]:
            byte_index += 1
        byte = bits[byte_index]
        self._low = (byte_index << 3) + (byte & -byte).bit_length() - 1
        if byte_index > len(bits) // 2:
            del bits[:byte_index]
            self._base += byte_index << 3
            self._low -= byte_index << 3

    def lowest(self) -> int | None:
        """The smallest offset in the set, None if empty."""
        if self._count == 0:
            return None
        if not self._bits[self._low >> 3] & (1 << (self._low & 7)):
            self._advance()
        return self._base + self._low

    def to_bytes(self) -> bytes:
        """Compact form: zlib of the bitmap from the lowest offset's byte."""
        if self._count == 0:
            return zlib.compress(_HEADER.pack(0, 0))
        self.lowest()
        start = self._low >> 3
        header = _HEADER.pack(self._base + (start << 3), self._count)
        return zlib.compress(header + bytes(self._bits[start:]))

    @classmethod
    def from_bytes(cls, data: bytes) -> OffsetSet:
        """Inverse of ``to_bytes``; ValueError on anything else."""
        try:
            raw = zlib.decompress(data)
            base, count = _HEADER.unpack_from(raw)
        except (zlib.error, struct.error) as exc:
            raise ValueError(f"not an offset set: {exc}") from None
        result = cls()
        result._base = base
        result._bits = bytearray(raw[_HEADER.size :])
        result._count = count
        if sum(bin(b).count("1") for b in result._bits) != count:
            raise ValueError("not an offset set: count does not match the bitmap")
        return result
