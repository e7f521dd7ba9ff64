"""The Redis key layout of the feature store (version 1), as lib/features/layout.ts states it.

Pure: no Redis client here. docs/feature-store.md describes the same layout; this module
is its Python reading, kept line for line with the TS reader so both return the same values.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Optional, Sequence, Union

#: Namespace and layout version of every key streamfleet writes to Redis.
NAMESPACE = "sf:v1:"

WINDOW_KINDS = ("window_count", "window_sum")
KINDS = ("latest", "counter", "min", "max", "last_n") + WINDOW_KINDS

Raw = Union[str, bytes, None]


def views_key(prefix: str) -> str:
    """HASH registry of feature views: field = view name, value = the view's JSON."""
    return f"{prefix}{NAMESPACE}views"


def store_of(view: Dict[str, Any]) -> str:
    """Where a view's data lives: the registry entry's ``store`` (set when ``streamfleet features rebuild``
    switched readers to a new version), else the view name (version 1). Entity keys and the offline
    log's ``view`` column use it."""
    return view.get("store") or view["name"]


def entity_key(prefix: str, view: str, entity_id: str, cluster: bool = False) -> str:
    """HASH of one entity's features in one view.

    On a Redis Cluster the id is a hash tag, ``fv:<view>:{<id>}``, so an entity's hashes share one
    slot; a single Redis keeps the untagged key (docs/feature-store.md, "Redis Cluster").
    """
    if cluster:
        return f"{prefix}{NAMESPACE}fv:{view}:{{{entity_id}}}"
    return f"{prefix}{NAMESPACE}fv:{view}:{entity_id}"


def bucket_start(t: Union[int, float], size: int) -> Union[int, float]:
    """Start (epoch ms) of the tumbling window of length ``size`` ms holding time ``t`` (epoch-aligned)."""
    if isinstance(t, int) and isinstance(size, int):
        return t // size * size
    return math.floor(t / size) * size


def _text(raw: Raw) -> Optional[str]:
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw


def _reject_constant(name: str) -> Any:
    # JSON.parse rejects NaN/Infinity; so does this reader, to return what the TS client returns
    raise ValueError(name)


def parse_json(raw: Raw) -> Any:
    """A stored value as JSON; text that is not JSON is returned as is (as the TS client does)."""
    text = _text(raw)
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


# What JS's Number() accepts (ASCII digits only, no "_"): the TS reader turns stored text into numbers with it
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RADIX = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")
_EXACT = 2**53
_INFINITY = {"Infinity": math.inf, "+Infinity": math.inf, "-Infinity": -math.inf}


def parse_number(raw: Raw) -> Union[int, float]:
    """A number the sink stored (``"3"``, ``"2.5"``, ``"1e+20"``), read as JS's ``Number()`` reads it.

    An int when the text is an integer a double holds exactly (|n| ≤ 2**53, as every epoch-ms
    time), else a float; NaN for text that is no number, as ``Number()`` gives.
    """
    text = (_text(raw) or "").strip()
    if text == "":
        return 0
    if text in _INFINITY:
        return _INFINITY[text]
    if _RADIX.fullmatch(text):
        return int(text, 0)
    if not _DECIMAL.fullmatch(text):
        return math.nan
    try:
        n = int(text)
    except ValueError:
        return float(text)
    return n if -_EXACT <= n <= _EXACT else float(text)


def _feature(view: Dict[str, Any], name: str) -> Dict[str, Any]:
    for f in view["features"]:
        if f["name"] == name:
            return f
    raise ValueError(f'view "{view["name"]}" has no feature "{name}"')


def _not_below_zero(x: Union[int, float]) -> Union[int, float]:
    # Math.max(0, x): NaN stays NaN (Python's max(0, nan) would say 0)
    return x if x != x or x > 0 else 0


def fields_to_read(view: Dict[str, Any], names: Sequence[str], as_of: Union[int, float]) -> List[str]:
    """The hash fields to HMGET for ``names``, two per feature, in the order decode_features expects."""
    out: List[str] = []
    for name in names:
        f = _feature(view, name)
        if f["kind"] in WINDOW_KINDS:
            out.append(f"{name}|{bucket_start(as_of, f['window_ms'])}")
        else:
            out.append(name)
        out.append(f"{name}@t")
    return out


def decode_features(view: Dict[str, Any], names: Sequence[str], reply: Sequence[Raw], as_of: Union[int, float]) -> Dict[str, Dict[str, Any]]:
    """Turns the HMGET reply for fields_to_read into ``{name: {value, event_time, staleness_ms[, window_start]}}``.

    Never written: value None and event_time None, except windows, which read 0 (a window with
    no events sums to 0). Windows read the window holding ``as_of``.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for i, name in enumerate(names):
        f = _feature(view, name)
        raw = reply[2 * i] if 2 * i < len(reply) else None
        t = reply[2 * i + 1] if 2 * i + 1 < len(reply) else None
        event_time = None if t is None else parse_number(t)
        staleness = None if event_time is None else _not_below_zero(as_of - event_time)
        if f["kind"] in WINDOW_KINDS:
            out[name] = {
                "value": 0 if raw is None else parse_number(raw),
                "event_time": event_time,
                "staleness_ms": staleness,
                "window_start": bucket_start(as_of, f["window_ms"]),
            }
        else:
            out[name] = {"value": parse_json(raw), "event_time": event_time, "staleness_ms": staleness}
    return out
