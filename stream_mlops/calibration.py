"""A model's false-alarm budget, split across its detectors and turned into parameters.

The user states one budget per model: false drift alarms per prediction, across
all of the model's signals (``false_alarm_budget``, default 1e-7: one false
alarm per ten million predictions). ``split`` divides it: a share
(``retrain_budget_share``, default half) goes to the detectors of the signals
that trigger retraining (the error), split equally among them, and the rest
equally among all other detectors. The shares add up to the budget, so by the
union bound the model's false alarms stay within it whatever the dependence
between signals (Bonferroni with weights). The weights spend the budget where
a false alarm costs most and speed matters most: the error of a model with
fifty features keeps half the budget instead of a fifty-second of it. Fifty
features cost no more false alarms than five, only a little detection delay
(every calibrated threshold grows with the log of its share, not linearly).

Each detector family turns its share (false alarms per observation) into its
own parameters, from its own theory:

* ``adwin``: Bifet and Gavalda (2007), Theorem 3.1, bounds ADWIN's false cuts
  by ``delta`` per check (a check every 32 values: ``delta / 32`` per value),
  for values in [0, 1]; the engine feeds ADWIN only such values (a
  classifier's error, the score, the estimated error, or else the value's rank
  in a reference sample, see ``stream_mlops.signals``). The bound is loose:
  ``benchmarks/adwin_calibration.py`` measured at most 2.5e-4 false alarms per
  value per unit of delta (0/1 errors at 5% and 50%, uniform values, ranks of
  24 levels; delta 0.002 to 0.2, 3M values each), and the ratio falls as delta
  does. We take ``delta = rate / 1e-3``: four times the largest measured
  ratio, still 31 times below what the theorem needs, so ADWIN is not made
  slower than the budget requires.
* ``page_hinkley``: our adapter runs Page-Hinkley on the standardised signal
  with drift allowance 0.5, which is the CUSUM of the Gaussian log-likelihood
  ratio for a one-SD shift; a CUSUM with threshold ``h`` has a mean run length
  to false alarm of at least ``exp(h)`` (Lorden 1971), two of them (up and
  down) in mode "both": ``threshold = ln(2 / rate)``. Valid for roughly
  Gaussian signals only.
* ``glr``: its own ``false_alarm_rate``: split over its CUSUMs, each
  threshold from the CUSUM's average run length (see
  ``stream_mlops.detectors.glr``).
* ``distribution``: its own ``false_alarm_rate`` (a union bound over its
  chi-square tests).
* Other river detectors have no calibration; they keep their parameters and
  still take a share, so the others stay within the budget.

A parameter the configuration sets explicitly is never overridden.

>>> share(1e-7, 10)
1e-08
>>> split(1e-6, retrain=1, other=4, retrain_share=0.5)
(5e-07, 1.25e-07)
>>> split(1e-6, retrain=1, other=4, retrain_share=None)
(2e-07, 2e-07)
>>> calibrated("adwin", {}, 1e-8)
{'delta': 1e-05}
>>> calibrated("adwin", {"delta": 0.01}, 1e-8)
{'delta': 0.01}
>>> round(calibrated("page_hinkley", {}, 1e-8)["threshold"], 2)
19.11
>>> calibrated("distribution", {"categorical": True}, 1e-8)
{'categorical': True, 'false_alarm_rate': 1e-08}
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["calibrated", "share", "split"]

# False alarms per value per unit of ADWIN's delta: 4x the largest ratio that
# benchmarks/adwin_calibration.py measured (2.5e-4), see above.
_ADWIN_ALARMS_PER_DELTA: Final = 1e-3
# The largest delta measured; beyond it the constant is not known to hold.
_MAX_DELTA: Final = 0.2


def share(budget: float, detectors: int) -> float:
    """False alarms per observation for each of ``detectors`` detectors."""
    if budget <= 0.0:
        raise ValueError("budget must be positive")
    return budget / max(detectors, 1)


def split(
    budget: float, *, retrain: int, other: int, retrain_share: float | None
) -> tuple[float, float]:
    """False alarms per observation for each (retrain-signal detector, other detector).

    ``retrain_share`` of the budget goes to the ``retrain`` detectors, the rest to
    the ``other`` ones; None, or either group empty: an equal share for all.
    """
    if budget <= 0.0:
        raise ValueError("budget must be positive")
    if retrain_share is None or retrain == 0 or other == 0:
        equal = share(budget, retrain + other)
        return equal, equal
    return budget * retrain_share / retrain, budget * (1.0 - retrain_share) / other


def calibrated(name: str, params: dict[str, Any], rate: float) -> dict[str, Any]:
    """``params`` with the missing false-alarm parameters set for ``rate``."""
    out = dict(params)
    if name == "adwin":
        if "delta" not in out:
            # The measurements ran at river's default clock (32); a finer clock
            # checks more often: more chances of a false cut per value.
            clock = out.get("clock", 32)
            scale = 32.0 / clock if isinstance(clock, int) and clock > 0 else 1.0
            delta = min(rate / (_ADWIN_ALARMS_PER_DELTA * scale), _MAX_DELTA)
            warning = out.get("warning_delta")
            # A configured warning level stays above the calibrated drift level.
            if isinstance(warning, int | float) and delta >= warning:
                delta = warning / 2.0
            out["delta"] = delta
    elif name == "page_hinkley":
        if "threshold" not in out:
            sides = 2.0 if out.get("mode", "both") == "both" else 1.0
            out["threshold"] = math.log(sides / rate)
    elif name in ("distribution", "glr"):
        out.setdefault("false_alarm_rate", rate)
    return out
