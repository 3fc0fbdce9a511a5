"""A model's false-alarm budget, split across its detectors and turned into parameters.

The user states one budget per model: false drift alarms per prediction, across
all of the model's signals (``false_alarm_budget``, default 1e-7: one false
alarm per ten million predictions). Each (signal, detector) pair gets an equal
share (Bonferroni: the shares add up to the budget whatever the dependence
between signals), so fifty features cost no more false alarms than five, only
a little detection delay (every calibrated threshold grows with the log of its
share, not linearly).

Each detector family turns its share (false alarms per observation) into its
own parameters, from its own theory:

* ``adwin``: Bifet and Gavalda (2007), Theorem 3.1: on a stationary stream of
  values in [0, 1], ADWIN cuts its window at a given check with probability at
  most ``delta``. river checks every ``clock`` values, so ``delta = rate *
  clock`` keeps false alarms per observation below ``rate``. The bound assumes
  values in [0, 1]: the engine feeds ADWIN the error of a classifier, the score,
  the estimated error, or else the value's rank in a reference sample (see
  ``stream_mlops.signals``). It is conservative: measured false alarms are far
  below it (docs/detection.md).
* ``page_hinkley``: our adapter runs Page-Hinkley on the standardised signal
  with drift allowance 0.5, which is the CUSUM of the Gaussian log-likelihood
  ratio for a one-SD shift; a CUSUM with threshold ``h`` has a mean run length
  to false alarm of at least ``exp(h)`` (Lorden 1971), two of them (up and
  down) in mode "both": ``threshold = ln(2 / rate)``. Valid for roughly
  Gaussian signals only.
* ``distribution``: its own ``false_alarm_rate`` (a union bound over its
  chi-square tests).
* Other river detectors have no calibration; they keep their parameters and
  still take a share, so the others stay within the budget.

A parameter the configuration sets explicitly is never overridden.

>>> share(1e-7, 10)
1e-08
>>> calibrated("adwin", {}, 1e-8)
{'delta': 3.2e-07}
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

__all__ = ["calibrated", "share"]

_ADWIN_CLOCK: Final = 32  # river's default: ADWIN tests for a cut every 32 values
# ADWIN's delta stays below 0.5: beyond, its cut test is meaningless.
_MAX_DELTA: Final = 0.5


def share(budget: float, detectors: int) -> float:
    """False alarms per observation for each of ``detectors`` detectors."""
    if budget <= 0.0:
        raise ValueError("budget must be positive")
    return budget / max(detectors, 1)


def calibrated(name: str, params: dict[str, Any], rate: float) -> dict[str, Any]:
    """``params`` with the missing false-alarm parameters set for ``rate``."""
    out = dict(params)
    if name == "adwin":
        if "delta" not in out:
            delta = min(rate * out.get("clock", _ADWIN_CLOCK), _MAX_DELTA)
            warning = out.get("warning_delta")
            # A configured warning level stays above the calibrated drift level.
            if isinstance(warning, int | float) and delta >= warning:
                delta = warning / 2.0
            out["delta"] = delta
    elif name == "page_hinkley":
        if "threshold" not in out:
            sides = 2.0 if out.get("mode", "both") == "both" else 1.0
            out["threshold"] = math.log(sides / rate)
    elif name == "distribution":
        out.setdefault("false_alarm_rate", rate)
    return out
