from __future__ import annotations

import math
import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_mlops.changepoint import block_post_change_count, post_change_count


def loop_post_change_count(values: Sequence[float]) -> int | None:
    """The CUSUM split by a plain loop: what the numpy version must match exactly."""
    n = len(values)
    if n < 2:
        return None
    total = 0.0
    for v in values:
        total += v
    mean = total / n
    best_k, best = 0, 0.0
    running = 0.0
    for k in range(1, n):
        running += values[k - 1] - mean
        if abs(running) > best:
            best_k, best = k, abs(running)
    if best_k == 0 or best <= 1e-9 * (1.0 + abs(total)):
        return None
    return n - best_k


def test_places_a_small_error_rate_step_near_where_it_happened() -> None:
    rng = random.Random(3)
    values = [float(rng.random() < 0.05) for _ in range(2000)]
    values += [float(rng.random() < 0.20) for _ in range(300)]
    post = post_change_count(values)
    assert post is not None
    assert 200 <= post <= 400, post


@given(
    before=st.integers(min_value=20, max_value=300),
    after=st.integers(min_value=20, max_value=300),
    low=st.floats(min_value=-5, max_value=5),
    jump=st.floats(min_value=0.5, max_value=5),
)
def test_a_noise_free_step_is_placed_exactly(
    before: int, after: int, low: float, jump: float
) -> None:
    assert post_change_count([low] * before + [low + jump] * after) == after


def test_nothing_to_place_in_a_constant_or_tiny_sequence() -> None:
    assert post_change_count([]) is None
    assert post_change_count([1.0]) is None
    assert post_change_count([0.3] * 500) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([0.0, 1.0]),
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        ),
        max_size=600,
    )
)
def test_the_same_split_as_a_plain_loop(values: list[float]) -> None:
    assert post_change_count(values) == loop_post_change_count(values)


def test_error_streams_split_as_a_plain_loop_does() -> None:
    # 0/1 errors have many equal CUSUM values: the first maximum must win.
    rng = random.Random(11)
    for _ in range(50):
        values = [float(rng.random() < 0.1) for _ in range(rng.randrange(2, 5000))]
        assert post_change_count(values) == loop_post_change_count(values)


def test_block_split_finds_a_short_late_change_the_raw_cusum_misses() -> None:
    # 12,000 values at 1%, then 384 at 6% (an ADWIN alert's moment), summed in
    # blocks of 32: the raw CUSUM is drawn toward the middle of the stretch.
    rng = random.Random(4)
    values = [float(rng.random() < 0.01) for _ in range(12_000)]
    values += [float(rng.random() < 0.06) for _ in range(384)]
    sums = [math.fsum(values[i : i + 32]) for i in range(0, len(values), 32)]
    counts = [len(values[i : i + 32]) for i in range(0, len(values), 32)]
    after = block_post_change_count(sums, counts, min_segment=32)
    assert after is not None and abs(after - 384) <= 96


def test_block_split_needs_room_on_both_sides() -> None:
    assert block_post_change_count([0.0, 5.0], [32, 5], min_segment=32) is None
    assert block_post_change_count([0.0, 0.0, 32.0], [32, 32, 32], min_segment=32) == 32
