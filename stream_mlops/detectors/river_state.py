"""river objects as plain data, and back, without unpickling anything.

A river detector is rebuilt from its parameters, then its state is set by a
checked attribute walk over that fresh instance: an attribute is set only when
the fresh instance has it and the value read back has the fresh value's kind
(a number for a number, a list no longer than a deque's ``maxlen``, a
``random.Random`` state of the right shape, a river statistic such as ``Mean``
or ``Var`` walked the same way). Constructor parameters are not written: they
come from the parameters. Bound methods (PageHinkley's test, chosen by its
``mode``) come from the fresh instance too.

Two pieces of river state live in Rust: ADWIN's window (``AdaptiveWindowing``)
and the exponentially weighted mean of HDDM_W (``RsEWMean``). Their
``__getstate__`` is bincode (version 1: little-endian, fixed-width integers,
u64 lengths) of plain structs of numbers, so they are written here as numbers
(ADWIN's buckets as lists of totals and variances) and turned back into bytes
only after every number is checked: river's ``__setstate__`` unwraps its
deserializer and panics on bytes it cannot parse, and a window whose counts
disagree with its width would panic later, on an update. The native call is
still guarded: anything it raises, pyo3's ``PanicException`` (a
``BaseException``) included, becomes a ``ValueError``; and the bytes river
gives back must be the bytes it was given. The layouts are river 0.26's (the
snapshot records river's version; another minor version is refused before any
of this runs); a layout that differs from the one described here fails at
``state()`` instead of writing wrong numbers.
"""

from __future__ import annotations

import functools
import inspect
import random
import struct
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from river._river_rust.drift import AdaptiveWindowing
from river._river_rust.stats import RsEWMean

from stream_mlops.plain_data import (
    FieldError,
    Fields,
    check_int,
    check_list,
    float_data,
    floats_data,
    kind_of,
    read_float,
)
from stream_mlops.snapshot import NEVER_CAUGHT

__all__ = ["load_object_state", "object_state", "scalar_params"]

_I32: Final = (-(2**31), 2**31 - 1)
_MT_WORDS: Final = 624  # random.Random's Mersenne Twister state: 624 words and an index


_PARAMETERS: dict[type[Any], frozenset[str]] = {}


def _parameters(cls: type[Any]) -> frozenset[str]:
    found = _PARAMETERS.get(cls)
    if found is None:
        found = _PARAMETERS[cls] = frozenset(inspect.signature(cls).parameters)
    return found


def scalar_params(obj: Any) -> frozenset[str]:
    """Attributes of ``obj`` that are constructor parameters with plain values."""
    names = _parameters(type(obj))
    return frozenset(
        name
        for name, value in vars(obj).items()
        if name in names and (value is None or type(value) in (bool, int, float, str))
    )


def _is_own_method(obj: object, value: object) -> bool:
    return inspect.ismethod(value) and value.__self__ is obj


def _is_river_object(value: object) -> bool:
    return type(value).__module__.startswith("river.") and hasattr(value, "__dict__")


def object_state(
    obj: object, *, skip: frozenset[str] = frozenset(), path: str = ""
) -> dict[str, Any]:
    """Every attribute of a river object as plain data, except ``skip`` and bound methods.

    TypeError for a value this module cannot write (a new kind of river state:
    the detector contract test runs every known detector through here).
    """
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name in skip or _is_own_method(obj, value):
            continue
        out[name] = _value_state(value, f"{path}.{name}" if path else name)
    return out


def _scalar_state(value: object, path: str) -> bool | int | float | str | None:
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str:
        return value  # type: ignore[return-value]
    if kind is float:
        return float_data(value)  # type: ignore[arg-type]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float_data(float(value))
    raise TypeError(f"{path}: a {kind.__name__} cannot be written as plain data")


def _value_state(value: object, path: str) -> Any:
    if isinstance(value, deque | list | tuple):
        if all(type(item) is float for item in value):
            return floats_data(value)
        return [_scalar_state(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if type(value) is random.Random:
        version, words, gauss_next = value.getstate()
        return [version, list(words), None if gauss_next is None else float_data(gauss_next)]
    codec = _NATIVE.get(type(value))
    if codec is not None:
        return codec.state(value, path)
    if _is_river_object(value):
        return object_state(value, path=path)
    return _scalar_state(value, path)


def load_object_state(
    target: object, state: object, path: str, *, skip: frozenset[str] = frozenset()
) -> None:
    """Set ``target``'s attributes (a fresh instance) from ``object_state`` data.

    FieldError (a ValueError) naming the path on a missing or unexpected
    attribute, or a value that does not match the fresh one's kind and shape.
    """
    fields = Fields(state, path)
    for name, template in list(vars(target).items()):
        if name in skip or _is_own_method(target, template):
            continue
        value = fields.raw(name)
        setattr(target, name, _load_value(template, value, fields.at(name)))
    fields.done()


def _load_scalar(template: object, value: object, path: str) -> Any:
    kind = type(template)
    if kind is bool or isinstance(template, np.bool_):
        if type(value) is not bool:
            raise FieldError(f"{path}: expected true or false, got {kind_of(value)}")
        return value
    if template is None or kind in (int, float) or isinstance(template, np.number):
        # A number may change kind as river updates it (an int 0 becomes a
        # float), and None stands for "not yet" (DDM's minimum): a number or None.
        if value is None and template is None:
            return None
        if type(value) is int:
            return value
        return read_float(value, path)
    if kind is str:
        if type(value) is not str:
            raise FieldError(f"{path}: expected a string, got {kind_of(value)}")
        return value
    raise FieldError(f"{path}: a {kind.__name__} cannot be read from plain data")


def _load_items(value: object, path: str, max_len: int | None) -> list[Any]:
    items = check_list(value, path, max_len=max_len)
    for i, item in enumerate(items):
        if type(item) not in (bool, int, float) and not (
            type(item) is str and item in ("NaN", "Infinity", "-Infinity")
        ):
            raise FieldError(f"{path}[{i}]: expected a number or a bool, got {kind_of(item)}")
    return [read_float(item, path) if type(item) is str else item for item in items]


def _load_value(template: object, value: object, path: str) -> Any:
    if type(template) is deque:
        return deque(_load_items(value, path, template.maxlen), maxlen=template.maxlen)
    if type(template) in (list, tuple):
        items = _load_items(value, path, None)
        return items if type(template) is list else tuple(items)
    if type(template) is random.Random:
        return _load_random(value, path)
    codec = _NATIVE.get(type(template))
    if codec is not None:
        return codec.load(template, value, path)
    if _is_river_object(template):
        load_object_state(template, value, path)
        return template
    return _load_scalar(template, value, path)


def _load_random(value: object, path: str) -> random.Random:
    parts = check_list(value, path)
    if len(parts) != 3 or parts[0] != 3 or type(parts[0]) is not int:
        raise FieldError(f"{path}: expected [3, words, gauss_next] (a random.Random state)")
    words = check_list(parts[1], f"{path}[1]")
    if len(words) != _MT_WORDS + 1:
        raise FieldError(f"{path}[1]: expected {_MT_WORDS + 1} integers, got {len(words)}")
    for i, word in enumerate(words[:-1]):
        check_int(word, f"{path}[1][{i}]", low=0, high=2**32 - 1)
    check_int(words[-1], f"{path}[1][{_MT_WORDS}]", low=0, high=_MT_WORDS)
    gauss_next = None if parts[2] is None else read_float(parts[2], f"{path}[2]")
    rng = random.Random()
    try:
        rng.setstate((3, tuple(words), gauss_next))
    except (ValueError, TypeError, OverflowError) as exc:
        raise FieldError(f"{path}: not a random.Random state: {exc}") from None
    return rng


def _set_native(target: Any, raw: bytes, path: str) -> None:
    try:
        target.__setstate__(raw)
    except NEVER_CAUGHT:
        raise
    except BaseException as exc:  # pyo3's PanicException is a BaseException
        raise FieldError(f"{path}: river refused the state: {type(exc).__name__}: {exc}") from None
    if target.__getstate__() != raw:
        raise FieldError(f"{path}: river did not take the state as given")


@functools.lru_cache(maxsize=256)
def _struct(fmt: str) -> struct.Struct:
    return struct.Struct("<" + fmt)


class _Layout:
    """Reads bincode numbers in order, and knows where it is."""

    __slots__ = ("data", "offset", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, fmt: str) -> tuple[Any, ...]:
        layout = _struct(fmt)
        try:
            values = layout.unpack_from(self.data, self.offset)
        except struct.error:
            raise TypeError(f"river's {self.what} state has an unexpected layout") from None
        self.offset += layout.size
        return values

    def end(self) -> None:
        if self.offset != len(self.data):
            raise TypeError(f"river's {self.what} state has an unexpected layout")


class _AdaptiveWindowing:
    """ADWIN's window, river 0.26: ``AdaptiveWindowing`` then the Python wrapper's arguments.

    AdaptiveWindowing: delta f64, clock i32, max_buckets u64, min_window_length
    f64, grace_period f64, total f64, variance f64, width f64, total_width f64,
    n_buckets i32, max_n_buckets i32, tick i32, n_detections i32, then the
    bucket levels (u64 count), level *k* holding summaries of 2**k values each:
    max_size u64, current_idx u64, totals and variances (u64 count, f64s;
    max_size + 1 slots, zero past current_idx). The wrapper: delta f64, clock
    i32, max_buckets u64, min_window_length i32, grace_period i32.

    As plain data: the counters, and per level how many summaries it holds
    (``counts``) with their totals and variances, all levels in one list each.
    """

    HEAD: Final = "diQdd" + "dddd4i" + "Q"
    WRAPPER: Final = "diQii"
    _PARAMS_SIZE: Final = struct.calcsize("<diQdd")
    _STATE_FIELDS: Final = (
        "total",
        "variance",
        "width",
        "total_width",
        "n_buckets",
        "max_n_buckets",
        "tick",
        "n_detections",
    )

    @staticmethod
    def _levels(slots: int, count: int) -> struct.Struct:
        return _struct(f"QQQ{slots}dQ{slots}d" * count)

    def parse(self, raw: bytes) -> tuple[dict[str, Any], int]:
        """The window's state as plain data, and its max_buckets."""
        try:
            head = _struct(self.HEAD).unpack_from(raw, 0)
            max_buckets, count = head[2], head[-1]
            slots = max_buckets + 1
            levels = self._levels(slots, count)
            values = levels.unpack_from(raw, _struct(self.HEAD).size)
            _struct(self.WRAPPER).unpack_from(raw, _struct(self.HEAD).size + levels.size)
        except (struct.error, OverflowError, MemoryError):
            raise TypeError("river's ADWIN state has an unexpected layout") from None
        if _struct(self.HEAD).size + levels.size + _struct(self.WRAPPER).size != len(raw):
            raise TypeError("river's ADWIN state has an unexpected layout")
        per_level = 2 * slots + 4
        counts: list[int] = []
        totals: list[float] = []
        variances: list[float] = []
        for k in range(count):
            at = k * per_level
            size, used, n_totals = values[at : at + 3]
            if size != max_buckets or n_totals != slots or values[at + 3 + slots] != slots:
                raise TypeError("river's ADWIN state has an unexpected layout")
            counts.append(used)
            totals += values[at + 3 : at + 3 + used]
            variances += values[at + 4 + slots : at + 4 + slots + used]
        state: dict[str, Any] = {
            name: float_data(value) if type(value) is float else value
            for name, value in zip(self._STATE_FIELDS, head[5:13], strict=True)
        }
        state["counts"] = counts
        state["totals"] = floats_data(totals)
        state["variances"] = floats_data(variances)
        return state, max_buckets

    def state(self, window: Any, path: str) -> dict[str, Any]:
        return self.parse(window.__getstate__())[0]

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one instance, for the program's life)
    def max_buckets(self, fresh: bytes) -> int:
        """Of a fresh window's bytes (the same for every detector of the same parameters)."""
        return self.parse(fresh)[1]

    def load(self, template: Any, value: object, path: str) -> Any:
        fresh = template.__getstate__()
        max_buckets = self.max_buckets(fresh)
        head = _struct(self.HEAD)
        fields = Fields(value, path)
        numbers = [fields.number(k) for k in self._STATE_FIELDS[:4]]
        counters = [fields.integer(k, low=_I32[0], high=_I32[1]) for k in self._STATE_FIELDS[4:]]
        counts = fields.integers("counts", max_len=62, low=0, high=max_buckets)
        totals = fields.numbers("totals")
        variances = fields.numbers("variances")
        fields.done()
        if not counts:
            raise FieldError(f"{fields.at('counts')}: expected at least one bucket level")
        if len(counts) > 1 and counts[-1] == 0:
            raise FieldError(f"{fields.at('counts')}: the oldest bucket level is empty")
        if len(totals) != sum(counts) or len(variances) != sum(counts):
            raise FieldError(f"{path}: expected one total and one variance per bucket")
        width = sum(used << k for k, used in enumerate(counts))
        if numbers[2] != width:
            raise FieldError(
                f"{fields.at('width')}: {numbers[2]} disagrees with the buckets' {width} values"
            )
        slots = max_buckets + 1
        flat: list[float | int] = []
        taken = 0
        for used in counts:
            pad = [0.0] * (slots - used)
            flat += (max_buckets, used, slots, *totals[taken : taken + used], *pad, slots)
            flat += (*variances[taken : taken + used], *pad)
            taken += used
        raw = (
            fresh[: self._PARAMS_SIZE]
            + _struct("dddd4iQ").pack(*numbers, *counters, len(counts))
            + self._levels(slots, len(counts)).pack(*flat)
            + fresh[head.size + self._levels(slots, 1).size :]
        )
        _set_native(template, raw, path)
        return template


class _EWMean:
    """HDDM_W's EWMean, river 0.26: mean f64, alpha f64, 1 - alpha f64,
    initialized bool (one byte), then the wrapper's alpha f64."""

    def parse(self, raw: bytes) -> tuple[float, float, float, bool, float]:
        layout = _Layout(raw, "EWMean")
        mean, alpha, rest, initialized, wrapper_alpha = layout.take("ddd?d")
        layout.end()
        return mean, alpha, rest, initialized, wrapper_alpha

    def state(self, stat: Any, path: str) -> dict[str, Any]:
        mean, _, _, initialized, _ = self.parse(stat.__getstate__())
        return {"mean": float_data(mean), "initialized": initialized}

    def load(self, template: Any, value: object, path: str) -> Any:
        _, alpha, rest, _, wrapper_alpha = self.parse(template.__getstate__())
        fields = Fields(value, path)
        mean = fields.number("mean")
        initialized = fields.boolean("initialized")
        fields.done()
        _set_native(
            template, struct.pack("<ddd?d", mean, alpha, rest, initialized, wrapper_alpha), path
        )
        return template


_NATIVE: Final[Mapping[type, _AdaptiveWindowing | _EWMean]] = {
    AdaptiveWindowing: _AdaptiveWindowing(),
    RsEWMean: _EWMean(),
}
