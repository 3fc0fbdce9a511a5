from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_mlops.offsets import OffsetSet

operations = st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=5000)))


@given(operations)
def test_behaves_like_a_set(ops: list[tuple[bool, int]]) -> None:
    offsets, model = OffsetSet(), set[int]()
    for add, offset in ops:
        if add:
            offsets.add(offset)
            model.add(offset)
        else:
            offsets.discard(offset)
            model.discard(offset)
        assert len(offsets) == len(model)
        assert offsets.lowest() == (min(model) if model else None)
    assert list(offsets) == sorted(model)
    assert all(o in offsets for o in model)
    restored = OffsetSet.from_bytes(offsets.to_bytes())
    assert list(restored) == sorted(model)
    assert restored.lowest() == offsets.lowest()


def test_stays_compact_while_a_stream_moves_on() -> None:
    offsets = OffsetSet()
    for offset in range(1_000_000):
        offsets.add(offset)
        if offset >= 100:
            offsets.discard(offset - 100)  # a hundred pending at any time
    assert len(offsets) == 100
    assert offsets.lowest() == 999_900
    assert len(offsets.to_bytes()) < 100
    assert len(offsets._bits) < 10_000  # the bitmap follows the pending range


def test_rejects_garbage_and_negative_offsets() -> None:
    with pytest.raises(ValueError, match="not an offset set"):
        OffsetSet.from_bytes(b"garbage")
    with pytest.raises(ValueError, match="non-negative"):
        OffsetSet().add(-1)
