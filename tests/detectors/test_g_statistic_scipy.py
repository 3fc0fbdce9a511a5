"""The distribution detector's G statistic is scipy's G-test with Williams' correction.

The detector computes G by hand because it runs on every window of every
label-free signal, where ``scipy.stats.chi2_contingency`` costs far more per
call (arrays, expected frequencies, a result object). scipy gives the
uncorrected G of the 2 x K table; Williams' q (Williams 1976, for an r x c
table) is applied here from its general formula, written independently of the
detector's 2 x K form.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from stream_mlops.detectors.distribution import g_statistic


def williams_q(table: list[list[int]]) -> float:
    rows = [sum(row) for row in table]
    cols = [sum(col) for col in zip(*table, strict=True)]
    n = sum(rows)
    r, c = len(rows), len(cols)
    return 1 + (n * sum(1 / x for x in rows) - 1) * (n * sum(1 / x for x in cols) - 1) / (
        6 * n * (r - 1) * (c - 1)
    )


def scipy_g(a: dict[int, int], b: dict[int, int]) -> float:
    cells = sorted(a.keys() | b.keys())
    table = [[a.get(k, 0) for k in cells], [b.get(k, 0) for k in cells]]
    g = chi2_contingency(table, correction=False, lambda_="log-likelihood").statistic
    return float(g) / williams_q(table)


# Counts per bin of the two samples; a bin may be empty in one sample, not in both.
counts = st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 500)).filter(lambda ab: ab != (0, 0)),
    min_size=2,
    max_size=12,
).filter(lambda cells: any(a for a, _ in cells) and any(b for _, b in cells))


@settings(max_examples=200, deadline=None)
@given(counts)
def test_g_statistic_equals_scipys_log_likelihood_g_williams_corrected(
    cells: list[tuple[int, int]],
) -> None:
    a = {k: x for k, (x, _) in enumerate(cells) if x}
    b = {k: y for k, (_, y) in enumerate(cells) if y}
    assert g_statistic(a, b) == pytest.approx(scipy_g(a, b), rel=1e-9, abs=1e-9)


def test_a_shifted_category_frequency() -> None:
    reference = {0: 400, 1: 250, 2: 150, 3: 120, 4: 80}
    window = {0: 75, 1: 62, 2: 38, 3: 30, 4: 45}
    assert g_statistic(reference, window) == pytest.approx(scipy_g(reference, window), rel=1e-12)
    assert g_statistic(reference, window) > 10
