"""Point-in-time retrieval from the offline feature log in PostgreSQL, as lib/features/historical*.ts does it.

For rows of (entity id, time), every requested feature *as of* that time: the value the online
store held once every record with event time ≤ t had been applied, and nothing later
(docs/feature-store.md, "Point-in-time semantics"). Per chunk of rows one query reads each
asked entity's history once, along the log's (entity, event_time) index, merged per feature between
consecutive asked times (the *segments*); the segments are then folded in time order by the
rules the sink applies records with. The query text is the TS client's, so both read the
same rows and PostgreSQL merges them the same way; the fold below is held to the TS fold
(lib/features/historical-fold.ts) by test/integration/python-client.test.ts.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .layout import WINDOW_KINDS, bucket_start, store_of

Number = Union[int, float]
ViewDef = Dict[str, Any]

#: Rows per query, as the TS client.
CHUNK = 5000

_NEWEST_FIRST = 'l.event_time DESC, l.cluster DESC, l.topic DESC, l.partition DESC, l."offset" DESC, l.seq DESC'
_EXACT = 2**53


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def offline_table(view: ViewDef) -> Tuple[str, str]:
    """(schema, table) of the view's offline log; ValueError when the view keeps none."""
    offline = view.get("offline")
    if not offline:
        raise ValueError(f'feature view "{view["name"]}" has no offline log (give it `offline:` in its redis.features sink)')
    return offline["schema"], offline["table"]


def _merge(feature: Dict[str, Any], column: str) -> str:
    k = _literal(feature["name"])
    num = f"(l.c->>{k})::float8"
    kind = feature["kind"]
    if kind == "counter":
        return f"sum({num}) AS {column}"
    if kind in ("min", "max"):
        return f"{kind}({num}) AS {column}"
    if kind == "latest":
        return f"(array_agg(jsonb_build_array(l.c->{k})) FILTER (WHERE l.c ? {k}))[1] AS {column}"
    if kind == "last_n":
        return f"to_jsonb((array_agg(l.c->{k}) FILTER (WHERE l.c ? {k}))[1:{int(feature['n'])}]) AS {column}"
    if kind in WINDOW_KINDS:
        w = int(feature["window_ms"])
        # '%%': psycopg2's placeholder syntax; PostgreSQL sees one '%' (modulo)
        return f"sum({num}) FILTER (WHERE l.event_time >= s.t - ((s.t %% {w}) + {w}) %% {w}) AS {column}"
    raise ValueError(f'feature "{feature["name"]}" has an unknown kind "{kind}"')


def segments_sql(schema: str, table: str, features: Sequence[Dict[str, Any]]) -> str:
    """The query (psycopg2 placeholders: entity ids, asked times, view) answering one row per distinct (entity, t): entity, t, f0, f1, …

    The TS client's query (lib/features/historical-sql.ts): a segment's rows newest first from a
    sub-query ordered backwards by event time and source position (the log's index), aggregated in that order.
    """
    merged = ",\n        ".join(_merge(f, f"f{i}") for i, f in enumerate(features))
    return f"""WITH asks AS (
      SELECT DISTINCT entity, t FROM unnest(%s::text[], %s::int8[]) AS u(entity, t)
    ), seg AS (
      SELECT entity, t, lag(t) OVER (PARTITION BY entity ORDER BY t) AS prev FROM asks
    )
    SELECT s.entity, s.t AS t, m.*
    FROM seg s CROSS JOIN LATERAL (
      SELECT {merged}
      FROM (
        SELECT l.event_time, l.contributions AS c FROM {_ident(schema)}.{_ident(table)} l
        WHERE l.view = %s AND l.entity = s.entity AND l.event_time <= s.t AND (s.prev IS NULL OR l.event_time > s.prev)
        ORDER BY {_NEWEST_FIRST}
      ) l
    ) m"""


def _js_number(x: Any) -> Any:
    """A number as JS holds it once it crossed JSON: a float with an integral value is an int (|x| ≤ 2**53)."""
    if isinstance(x, float) and x.is_integer() and -_EXACT <= x <= _EXACT:
        return int(x)
    return x


def fold_segments(features: Sequence[Dict[str, Any]], segments: Sequence[Tuple[int, Sequence[Any]]]) -> List[List[Any]]:
    """Values of ``features`` as of each segment's closing time, from one entity's segments in time order.

    A segment is ``(t, [merged value per feature])``; None: the segment does not touch the
    feature; latest: ``[newest value]``; last_n: its n newest values, newest first; counters,
    min/max and windows: a number. Folded as lib/features/historical-fold.ts folds them: counters
    and window sums add (in segment order, so floats round alike), min/max keep the strict
    extreme, latest the newest, last_n the n newest; a window reads the window holding t (0 when
    empty), anything else never written reads None.
    """
    state: List[Any] = [None] * len(features)
    buckets: List[Dict[Number, Number]] = [{} for _ in features]
    out: List[List[Any]] = []
    for t, values in segments:
        row: List[Any] = []
        for f, feature in enumerate(features):
            kind = feature["kind"]
            v = values[f]
            if kind in WINDOW_KINDS:
                if v is not None:
                    b = bucket_start(t, feature["window_ms"])
                    buckets[f][b] = buckets[f].get(b, 0) + v
                row.append(_js_number(buckets[f].get(bucket_start(t, feature["window_ms"]), 0)))
                continue
            if v is not None:
                old = state[f]
                if kind == "counter":
                    state[f] = v if old is None else old + v
                elif kind == "min":
                    state[f] = v if old is None or v < old else old
                elif kind == "max":
                    state[f] = v if old is None or v > old else old
                elif kind == "latest":
                    state[f] = (v[0],)  # boxed: a JSON null is a value
                elif kind == "last_n":
                    state[f] = (list(v) + (old or []))[: int(feature["n"])]
            s = state[f]
            if s is None:
                row.append(None)
            elif kind == "latest":
                row.append(s[0])
            elif kind == "last_n":
                row.append(list(s))
            else:
                row.append(_js_number(s))
        out.append(row)
    return out


_DIGITS = re.compile(r"-?\d+(\.\d+)?")


def parse_time(v: Any) -> float:
    """Epoch ms of an asked time; NaN when unreadable.

    Numbers are epoch ms; strings of digits too; other strings ISO 8601 (``2024-01-01T10:00:00Z``,
    ``2024-01-01``); ``datetime`` and pandas ``Timestamp`` values their instant. A time without a
    UTC offset (naive) is read as UTC.
    """
    if isinstance(v, bool):
        return math.nan
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        nanos = getattr(v, "value", None)  # pandas.Timestamp: exact nanoseconds since the epoch
        if isinstance(nanos, int) and type(v).__name__ == "Timestamp":
            return nanos / 1_000_000
        return v.timestamp() * 1000
    if isinstance(v, _dt.date):
        return _dt.datetime(v.year, v.month, v.day, tzinfo=_dt.timezone.utc).timestamp() * 1000
    if isinstance(v, str):
        text = v.strip()
        if text == "":
            return math.nan
        if _DIGITS.fullmatch(text):
            return float(text)
        try:
            parsed = _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
        except ValueError:
            return math.nan
        return parse_time(parsed)
    try:
        import numbers

        if isinstance(v, numbers.Real):
            return float(v)
        if type(v).__name__ == "datetime64":  # numpy.datetime64
            import numpy as np

            return float(v.astype("datetime64[ns]").astype(np.int64)) / 1_000_000 if not np.isnat(v) else math.nan
    except (TypeError, ValueError):
        pass
    return math.nan


def check_asks(asks: Sequence[Tuple[Any, float]]) -> None:
    """ValueError naming the first asked row with no usable entity id or time (rows counted from 1)."""
    for i, (entity, t) in enumerate(asks):
        if not isinstance(entity, str) or entity == "":
            raise ValueError(f"row {i + 1}: expected a non-empty entity id, got {entity!r} (entity ids are the key's text: pass str(id), or df[column].astype(str))")
        if not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ValueError(f"row {i + 1}: expected a timestamp (epoch ms or ISO 8601) for entity {entity!r}")


def historical_chunks(conn: Any, view: ViewDef, features: Sequence[Dict[str, Any]], asks: Sequence[Tuple[str, float]], chunk: int = CHUNK) -> Iterator[List[List[Any]]]:
    """Per chunk of asked rows, in the order asked, one list of values per row (one value per feature).

    ``conn`` is a psycopg2 connection. The reads run in one transaction of their own when the
    connection was idle (rolled back at the end: nothing is written), else in the caller's.
    """
    schema, table = offline_table(view)
    sql = segments_sql(schema, table, features)
    import psycopg2.extensions as ext

    owned = not conn.autocommit and conn.get_transaction_status() == ext.TRANSACTION_STATUS_IDLE
    try:
        with conn.cursor() as cur:
            for start in range(0, len(asks), chunk):
                part = asks[start : start + chunk]
                times = [math.floor(t) for _, t in part]
                cur.execute(sql, ([e for e, _ in part], times, store_of(view)))
                by_entity: Dict[str, List[Tuple[int, Sequence[Any]]]] = {}
                for row in cur.fetchall():
                    by_entity.setdefault(row[0], []).append((int(row[1]), row[2:]))
                answers: Dict[Tuple[str, int], List[Any]] = {}
                for entity, segs in by_entity.items():
                    segs.sort(key=lambda s: s[0])
                    for (t, _), values in zip(segs, fold_segments(features, segs)):
                        answers[(entity, t)] = values
                yield [answers[(e, t)] for (e, _), t in zip(part, times)]
    finally:
        if owned:
            conn.rollback()


def feature_defs(view: ViewDef, names: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
    """The definitions of ``names`` (default all), ValueError for a name the view lacks."""
    every = [f["name"] for f in view["features"]]
    if isinstance(names, str):
        names = [names]
    chosen = list(names) if names else every
    unknown = [n for n in chosen if n not in every]
    if unknown:
        listed = ", ".join(f'"{n}"' for n in unknown)
        raise ValueError(f'view "{view["name"]}" has no feature {listed} (it has {", ".join(every)})')
    return [next(f for f in view["features"] if f["name"] == n) for n in chosen]
