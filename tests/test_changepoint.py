from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from stream_mlops.changepoint import post_change_count


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
