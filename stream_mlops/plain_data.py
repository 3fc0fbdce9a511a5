"""State as plain data: how snapshots write floats, and how they are read back.

Snapshots are JSON (numbers, strings, lists, objects), so reading one back runs
no code. What JSON cannot say is a non-finite float (a watermark starts at
-inf; extreme inputs can make a mean NaN), so writers pass floats through
``float_data`` / ``floats_data``, which spell those three values as strings.

``Fields`` reads a JSON object back field by field: each getter checks the type
(and range, or length) and a failure names the field's path, e.g.
``models[2].features["amount"].observations: expected an integer >= 0, got -1``.
Readers call ``done()`` at the end, so an unexpected field is an error too.

>>> import math
>>> doc = {"n": 3, "watermark": float_data(-math.inf), "values": floats_data([0.5, math.nan])}
>>> doc
{'n': 3, 'watermark': '-Infinity', 'values': [0.5, 'NaN']}
>>> fields = Fields(doc, "join")
>>> fields.integer("n", low=0), fields.number("watermark"), fields.numbers("values")
(3, -inf, [0.5, nan])
>>> fields.done()
>>> Fields({"n": True}, "join").integer("n")
Traceback (most recent call last):
...
stream_mlops.plain_data.FieldError: join.n: expected an integer, got a bool
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

__all__ = [
    "FieldError",
    "Fields",
    "check_int",
    "check_list",
    "float_data",
    "floats_data",
    "kind_of",
    "read_float",
]

_NON_FINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class FieldError(ValueError):
    """A field of plain data that is missing, of the wrong type or out of range."""


def float_data(value: float) -> float | str:
    """A float as JSON can carry it: itself, or ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    if math.isfinite(value):
        return float(value)
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def floats_data(values: Iterable[float]) -> list[float | str]:
    """A list of floats as JSON can carry it (see ``float_data``)."""
    out = list(map(float, values))
    if all(map(math.isfinite, out)):
        return out  # type: ignore[return-value]
    return [float_data(v) for v in out]


_KINDS: Final = {
    type(None): "null",
    bool: "a bool",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def kind_of(value: object) -> str:
    """How an error message names what it found instead."""
    return _KINDS.get(type(value), type(value).__name__)


def read_float(value: object, path: str) -> float:
    """A float written by ``float_data``; FieldError naming ``path`` otherwise."""
    if type(value) is float:
        return value
    if type(value) is str:
        found = _NON_FINITE.get(value)
        if found is not None:
            return found
    raise FieldError(f"{path}: expected a number, got {kind_of(value)}")


def _read_floats(values: list[object], path: str) -> list[float]:
    if all(type(v) is float for v in values):
        return values  # type: ignore[return-value]
    return [read_float(v, f"{path}[{i}]") for i, v in enumerate(values)]


class Fields:
    """One JSON object of a snapshot, read field by field with checks."""

    __slots__ = ("_data", "_path", "_read")

    def __init__(self, data: object, path: str) -> None:
        if type(data) is not dict:
            raise FieldError(f"{path or 'the document'}: expected an object, got {kind_of(data)}")
        self._data: dict[str, object] = data
        self._path = path
        self._read: set[str] = set()

    @property
    def path(self) -> str:
        return self._path

    def at(self, key: str) -> str:
        """The path of field ``key`` (for messages about it)."""
        return f"{self._path}.{key}" if self._path else key

    def keys(self) -> list[str]:
        """Every field's name, in order (an object keyed by names: signals, features)."""
        return list(self._data)

    def raw(self, key: str) -> object:
        """The field as it is (the caller checks it); FieldError if missing."""
        try:
            value = self._data[key]
        except KeyError:
            raise FieldError(f"{self.at(key)}: missing") from None
        self._read.add(key)
        return value

    def done(self) -> None:
        """FieldError naming any field no getter asked for."""
        extra = self._data.keys() - self._read
        if extra:
            names = ", ".join(sorted(repr(k) for k in extra))
            raise FieldError(f"{self._path or 'the document'}: unexpected field(s) {names}")

    # -- scalars ------------------------------------------------------------

    def integer(self, key: str, *, low: int | None = None, high: int | None = None) -> int:
        value = self.raw(key)
        return check_int(value, self.at(key), low=low, high=high)

    def optional_integer(
        self, key: str, *, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        return check_int(value, self.at(key), low=low, high=high)

    def number(self, key: str) -> float:
        return read_float(self.raw(key), self.at(key))

    def optional_number(self, key: str) -> float | None:
        value = self.raw(key)
        return None if value is None else read_float(value, self.at(key))

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if type(value) is not bool:
            raise FieldError(f"{self.at(key)}: expected true or false, got {kind_of(value)}")
        return value

    def string(self, key: str, *, choices: Iterable[str] | None = None) -> str:
        value = self.raw(key)
        if type(value) is not str:
            raise FieldError(f"{self.at(key)}: expected a string, got {kind_of(value)}")
        if choices is not None and value not in choices:
            raise FieldError(f"{self.at(key)}: {value!r} is not one of {sorted(choices)}")
        return value

    # -- containers -----------------------------------------------------------

    def items(self, key: str, *, max_len: int | None = None) -> list[object]:
        value = self.raw(key)
        return check_list(value, self.at(key), max_len=max_len)

    def optional_items(self, key: str, *, max_len: int | None = None) -> list[object] | None:
        value = self.raw(key)
        if value is None:
            return None
        return check_list(value, self.at(key), max_len=max_len)

    def numbers(self, key: str, *, max_len: int | None = None) -> list[float]:
        path = self.at(key)
        return _read_floats(check_list(self.raw(key), path, max_len=max_len), path)

    def optional_numbers(self, key: str, *, max_len: int | None = None) -> list[float] | None:
        value = self.raw(key)
        if value is None:
            return None
        path = self.at(key)
        return _read_floats(check_list(value, path, max_len=max_len), path)

    def integers(
        self,
        key: str,
        *,
        max_len: int | None = None,
        low: int | None = None,
        high: int | None = None,
    ) -> list[int]:
        path = self.at(key)
        values = check_list(self.raw(key), path, max_len=max_len)
        return [check_int(v, f"{path}[{i}]", low=low, high=high) for i, v in enumerate(values)]

    def counts(
        self, key: str, *, max_len: int | None = None, high: int | None = None
    ) -> dict[int, int]:
        """``[[bin, count], ...]`` (a dict whose order is part of the state) as that dict:
        bins distinct, in [0, ``high``], counts at least 1."""
        path = self.at(key)
        out: dict[int, int] = {}
        for i, pair in enumerate(check_list(self.raw(key), path, max_len=max_len)):
            at = f"{path}[{i}]"
            items = check_list(pair, at)
            if len(items) != 2:
                raise FieldError(f"{at}: expected [bin, count]")
            b = check_int(items[0], f"{at}[0]", low=0, high=high)
            if b in out:
                raise FieldError(f"{at}[0]: bin {b} appears twice")
            out[b] = check_int(items[1], f"{at}[1]", low=1)
        return out

    def child(self, key: str) -> Fields:
        return Fields(self.raw(key), self.at(key))

    def optional_child(self, key: str) -> Fields | None:
        value = self.raw(key)
        return None if value is None else Fields(value, self.at(key))

    def mapping(self, key: str) -> dict[str, object]:
        """An object whose keys are names (features, signals): the raw dict."""
        value = self.raw(key)
        if type(value) is not dict:
            raise FieldError(f"{self.at(key)}: expected an object, got {kind_of(value)}")
        return value


def check_int(value: object, path: str, *, low: int | None = None, high: int | None = None) -> int:
    if type(value) is not int:
        raise FieldError(f"{path}: expected an integer, got {kind_of(value)}")
    if low is not None and value < low:
        raise FieldError(f"{path}: expected an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise FieldError(f"{path}: expected an integer <= {high}, got {value}")
    return value


def check_list(value: object, path: str, *, max_len: int | None = None) -> list[object]:
    if type(value) is not list:
        raise FieldError(f"{path}: expected a list, got {kind_of(value)}")
    if max_len is not None and len(value) > max_len:
        raise FieldError(f"{path}: expected at most {max_len} items, got {len(value)}")
    return value
