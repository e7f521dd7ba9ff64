"""Point-in-time retrieval from the offline feature log in PostgreSQL, as lib/features/historical*.ts does it.

For rows of (entity id, time), every requested feature *as of* that time: the value the online
store held once every record with event time ≤ t had been applied, and nothing later
(docs/feature-store.md, "Point-in-time semantics"). Per chunk of rows one query reads each
asked entity's history once, along the log's (entity, event_time) index, merged per feature between
consecutive asked times (the *segments*); the segments are then folded in time order by the
rules the sink applies records with. When the view has snapshots (lib/features/snapshots.ts,
built by ``streamfleet features compact``), a segment starts from the newest one at or before
its time and reads only the log rows after it, as the TS client's reads do. The query text is
the TS client's, so both read the same rows and PostgreSQL merges them the same way; the fold
below is held to the TS fold (lib/features/historical-fold.ts) by
test/integration/python-client.test.ts, the snapshot reads by tests/test_historical_snapshots.py.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
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
_MIN_TIME = "(-9223372036854775808)::int8"
_STATE_FORMAT = 2  # lib/features/snapshots.ts, STATE_FORMAT
_MAX_TIME = "9223372036854775807::int8"


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


def _merge(feature: Dict[str, Any], column: str, after_base: bool = False) -> str:
    """The SQL merging one feature over a segment's rows; ``after_base``: only the rows after the
    segment's snapshot count (a segment from a snapshot also holds the earlier rows of the window
    holding t, which only the window features take)."""
    k = _literal(feature["name"])
    after = " AND (s.base IS NULL OR l.event_time > s.base)" if after_base else ""
    num = f"(l.c->>{k})::float8"
    kind = feature["kind"]
    if kind == "counter":
        return f"sum({num}){f' FILTER (WHERE true{after})' if after_base else ''} AS {column}"
    if kind in ("min", "max"):
        return f"{kind}({num}){f' FILTER (WHERE true{after})' if after_base else ''} AS {column}"
    if kind == "latest":
        return f"(array_agg(jsonb_build_array(l.c->{k})) FILTER (WHERE l.c ? {k}{after}))[1] AS {column}"
    if kind == "last_n":
        return f"to_jsonb((array_agg(l.c->{k}) FILTER (WHERE l.c ? {k}{after}))[1:{int(feature['n'])}]) AS {column}"
    if kind in WINDOW_KINDS:
        w = int(feature["window_ms"])
        # '%%': psycopg2's placeholder syntax; PostgreSQL sees one '%' (modulo)
        return f"sum({num}) FILTER (WHERE l.event_time >= s.t - ((s.t %% {w}) + {w}) %% {w}) AS {column}"
    raise ValueError(f'feature "{feature["name"]}" has an unknown kind "{kind}"')


def _snapshot_table(schema: str, table: str, what: str) -> str:
    """``<table>__snapshots``, ``__horizon`` or ``__stale`` (lib/features/offline-log.ts, snapshotTables)."""
    return f"{_ident(schema)}.{_ident(f'{table}__{what}')}"


def segments_sql(schema: str, table: str, features: Sequence[Dict[str, Any]], snap: bool = False) -> str:
    """The query answering one row per distinct (entity, t): entity, t, base, state, f0, f1, …

    Named psycopg2 placeholders: ``view``, ``entities``, ``times`` and, with ``snap``, ``fp`` (the
    fingerprint :func:`snapshot_read` found). The TS client's query (lib/features/historical-sql.ts,
    ``segmentsSql``), placeholder for placeholder: a segment's rows newest first from a sub-query
    ordered backwards by event time and source position (the log's index), aggregated in that order.

    Without ``snap`` an entity's first asked time reads its whole history up to t, each next one the
    rows since the previous (base and state null). With ``snap`` an asked time whose newest usable
    snapshot (through ≤ t, the fingerprint matching, older than any late row the writers marked for
    the entity) is later than the entity's previous asked time starts from it: base is its
    ``through``, state its folded features, and the segment holds the rows after it (and, for
    windows, the rows of the window holding t, which may start before it).
    """
    windows = [f for f in features if f["kind"] in WINDOW_KINDS]
    merged = ",\n        ".join(_merge(f, f"f{i}", snap and bool(windows) and f["kind"] not in WINDOW_KINDS) for i, f in enumerate(features))
    log = f"""SELECT l.event_time, l.contributions AS c FROM {_ident(schema)}.{_ident(table)} l
        WHERE l.view = %(view)s AND l.entity = s.entity AND l.event_time <= s.t AND l.event_time > s.lo
        ORDER BY {_NEWEST_FIRST}"""
    if not snap:
        return f"""WITH asks AS (
      SELECT DISTINCT entity, t FROM unnest(%(entities)s::text[], %(times)s::int8[]) AS u(entity, t)
    ), s AS (
      SELECT entity, t, coalesce(lag(t) OVER (PARTITION BY entity ORDER BY t), {_MIN_TIME}) AS lo FROM asks
    )
    SELECT s.entity, s.t::float8 AS t, NULL::float8 AS base, NULL::jsonb AS state, m.*
    FROM s CROSS JOIN LATERAL (
      SELECT {merged}
      FROM ({log}) l
    ) m"""
    # the earliest window start of t among the windows asked: a segment from a snapshot reads from there if that is earlier
    starts = ", ".join(f"t - ((t %% {int(f['window_ms'])}) + {int(f['window_ms'])}) %% {int(f['window_ms'])} - 1" for f in windows)
    window_from = f", least({starts})" if windows else ""
    return f"""WITH asks AS (
      SELECT DISTINCT entity, t FROM unnest(%(entities)s::text[], %(times)s::int8[]) AS u(entity, t)
    ), stale AS (
      SELECT entity, min(event_time) AS t FROM {_snapshot_table(schema, table, "stale")} WHERE view = %(view)s AND entity = ANY(%(entities)s::text[]) GROUP BY entity
    ), fp AS (
      SELECT 1 FROM {_snapshot_table(schema, table, "horizon")} WHERE view = %(view)s AND fp = %(fp)s
    ), seg AS (
      SELECT a.entity, a.t, lag(a.t) OVER (PARTITION BY a.entity ORDER BY a.t) AS prev, x.through, x.state
      FROM asks a LEFT JOIN stale st ON st.entity = a.entity
      LEFT JOIN LATERAL (
        SELECT sn.through, sn.state FROM {_snapshot_table(schema, table, "snapshots")} sn
        WHERE sn.view = %(view)s AND sn.entity = a.entity AND sn.through <= a.t AND sn.through < coalesce(st.t, {_MAX_TIME}) AND EXISTS (SELECT 1 FROM fp)
        ORDER BY sn.through DESC LIMIT 1
      ) x ON true
    ), s AS (
      SELECT entity, t, base, CASE WHEN base IS NOT NULL THEN state END AS state,
        CASE WHEN base IS NULL THEN coalesce(prev, {_MIN_TIME}) ELSE least(base{window_from}) END AS lo
      FROM (SELECT seg.*, CASE WHEN through IS NOT NULL AND (prev IS NULL OR through > prev) THEN through END AS base FROM seg) b
    )
    SELECT s.entity, s.t::float8 AS t, s.base::float8 AS base, s.state, m.*
    FROM s CROSS JOIN LATERAL (
      SELECT {merged}
      FROM ({log}) l
    ) m"""


def fingerprint(features: Sequence[Dict[str, Any]], every: Number) -> str:
    """What a view's snapshots are valid for, as lib/features/snapshots.ts ``fingerprint`` computes it.

    sha1 of ``JSON.stringify([2, every, [[name, kind, n or null], …]])`` (2: the form of a snapshot's
    state) over *all* the view's features
    without windows (not only those a read asks for), first 16 hex digits. Numbers are written as
    JavaScript writes them (``86400000``, never ``86400000.0``), so a definition that came through
    JSON as floats still matches.
    """
    defs = [[f["name"], f["kind"], _js_number(f.get("n"))] for f in features if f["kind"] not in WINDOW_KINDS]
    text = json.dumps([_STATE_FORMAT, _js_number(every), defs], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def snapshot_read(conn: Any, schema: str, table: str, store: str, features: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The fingerprint of the snapshots a read of the view may start from, or None when it has none.

    None: no snapshot tables (a log made before them, or of layout 1), no build for ``store`` yet, or a
    build for another definition of the view or another period (``features``: all the view's), or
    tables the role may not read. Asked first, as TS does, so that no statement fails: a failed one
    would abort the caller's transaction, which the read may be running in.
    """
    horizon = _snapshot_table(schema, table, "horizon")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(has_table_privilege(to_regclass(%s), 'SELECT') AND has_table_privilege(to_regclass(%s), 'SELECT')"
            " AND has_table_privilege(to_regclass(%s), 'SELECT'), false)",
            (horizon, _snapshot_table(schema, table, "snapshots"), _snapshot_table(schema, table, "stale")),
        )
        if not cur.fetchone()[0]:
            return None
        cur.execute(f"SELECT fp, every FROM {horizon} WHERE view = %s", (store,))
        row = cur.fetchone()
    # built with the view's present definition, or of no use
    return row[0] if row is not None and row[0] == fingerprint(features, int(row[1])) else None


def _js_number(x: Any) -> Any:
    """A number as JS holds it once it crossed JSON: a float with an integral value is an int (|x| ≤ 2**53)."""
    if isinstance(x, float) and x.is_integer() and -_EXACT <= x <= _EXACT:
        return int(x)
    return x


def _from_snapshot(feature: Dict[str, Any], m: Any) -> Any:
    """A feature's fold state from a snapshot's ``state`` entry, which has the form of one segment's
    merged values (the sum; the extreme; ``[V]`` for latest; the values newest first for last_n);
    None: absent, never written up to the snapshot."""
    if m is None:
        return None
    kind = feature["kind"]
    if kind == "latest":
        return (m[0],)
    return list(m) if kind == "last_n" else m


def fold_segments(features: Sequence[Dict[str, Any]], segments: Sequence[Sequence[Any]]) -> List[List[Any]]:
    """Values of ``features`` as of each segment's closing time, from one entity's segments in time order.

    A segment is ``(t, [merged value per feature])``; None: the segment does not touch the
    feature; latest: ``[newest value]``; last_n: its n newest values, newest first; counters,
    min/max and windows: a number. Folded as lib/features/historical-fold.ts folds them: counters
    and window sums add (in segment order, so floats round alike), min/max keep the strict
    extreme, latest the newest, last_n the n newest; a window reads the window holding t (0 when
    empty), anything else never written reads None.

    A segment that starts from a snapshot is ``(t, values, state)``, ``state`` the snapshot's JSON
    (features without windows; one left out had nothing yet): the fold restarts from it, as from
    everything up to the snapshot's time, and the windows restart empty — the segment holds every
    row of the window holding t, and no later ask reads an earlier window.
    """
    state: List[Any] = [None] * len(features)
    buckets: List[Dict[Number, Number]] = [{} for _ in features]
    out: List[List[Any]] = []
    for segment in segments:
        t, values = segment[0], segment[1]
        base = segment[2] if len(segment) > 2 else None
        if base is not None:
            for f, feature in enumerate(features):
                if feature["kind"] in WINDOW_KINDS:
                    buckets[f] = {}
                else:
                    state[f] = _from_snapshot(feature, base.get(feature["name"]))
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
    connection was idle (rolled back at the end: nothing is written), else in the caller's. When
    the view has snapshots built with its present definition (``streamfleet features compact``),
    the reads start from them, as the TS client's do: same answers, fewer log rows.
    """
    schema, table = offline_table(view)
    import psycopg2.extensions as ext

    owned = not conn.autocommit and conn.get_transaction_status() == ext.TRANSACTION_STATUS_IDLE
    try:
        # snapshots (lib/features/snapshots.ts), when the view has any built with its present definition
        fp = snapshot_read(conn, schema, table, store_of(view), view["features"])
        sql = segments_sql(schema, table, features, snap=fp is not None)
        with conn.cursor() as cur:
            for start in range(0, len(asks), chunk):
                part = asks[start : start + chunk]
                times = [math.floor(t) for _, t in part]
                cur.execute(sql, {"view": store_of(view), "entities": [e for e, _ in part], "times": times, "fp": fp})
                by_entity: Dict[str, List[Tuple[int, Sequence[Any], Any]]] = {}
                for row in cur.fetchall():
                    # entity, t, base, state, f0, f1, …: a segment from a snapshot carries its state
                    by_entity.setdefault(row[0], []).append((int(row[1]), row[4:], (row[3] or {}) if row[2] is not None else None))
                answers: Dict[Tuple[str, int], List[Any]] = {}
                for entity, segs in by_entity.items():
                    segs.sort(key=lambda s: s[0])
                    for (t, _, _), values in zip(segs, fold_segments(features, segs)):
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
