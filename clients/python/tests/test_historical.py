"""The pure half of historical retrieval: the segment fold, time parsing, request checks, the SQL text.

The half that talks to PostgreSQL is tested against the real log by test_historical_against_ts.py
(run from test/integration/python-client.test.ts), where the answers must equal the TS client's.
"""

import datetime as dt
import hashlib
import math
import re

import pytest

from streamfleet_features import FeatureClient, fold_segments, parse_time, segments_sql
from streamfleet_features.historical import check_asks, feature_defs, fingerprint
from support import FakeRedis, need_pandas, registry

H = 3_600_000
T0 = 1_704_103_200_000  # 2024-01-01T10:00:00Z, the start of an hour
FEATURES = [
    {"name": "n", "kind": "counter"},
    {"name": "last", "kind": "latest"},
    {"name": "lo", "kind": "min"},
    {"name": "hi", "kind": "max"},
    {"name": "recent", "kind": "last_n", "n": 2},
    {"name": "c1h", "kind": "window_count", "window_ms": H, "buckets": 2},
]


def test_fold_reads_each_feature_as_of_each_segment():
    segments = [
        (T0 - 1, [None, None, None, None, None, None]),  # nothing yet
        (T0 + 10, [2.0, ["a"], 5.0, 5.0, ["a", "x"], 2.0]),
        (T0 + 20, [None, [None], None, None, None, None]),  # a JSON null written last: latest reads null
        (T0 + H + 5, [1.5, ["b"], 1.0, 3.0, ["b"], 1.0]),  # the next window
        (T0 + H + 6, [None, None, None, None, None, None]),
    ]
    assert fold_segments(FEATURES, segments) == [
        [None, None, None, None, None, 0],
        [2, "a", 5, 5, ["a", "x"], 2],
        [2, None, 5, 5, ["a", "x"], 2],
        [3.5, "b", 1, 5, ["b", "a"], 1],
        [3.5, "b", 1, 5, ["b", "a"], 1],
    ]


def test_fold_gives_ints_as_js_would_print_them():
    row = fold_segments([{"name": "n", "kind": "counter"}], [(T0, [3.0])])[0]
    assert row == [3] and isinstance(row[0], int)
    assert fold_segments([{"name": "n", "kind": "counter"}], [(T0, [2.0**60])])[0][0] == 2.0**60  # beyond 2**53 stays a float


def test_fold_adds_windows_per_window_and_reads_the_one_holding_t():
    w = [{"name": "s", "kind": "window_sum", "window_ms": H, "buckets": 2}]
    got = fold_segments(w, [(T0 + 1, [1.25]), (T0 + 2, [1.0]), (T0 + H, [4.0]), (T0 + 3 * H, [None])])
    assert got == [[1.25], [2.25], [4], [0]]


def test_fold_restarts_from_a_snapshot():
    # a snapshot's state has the form of one segment's merged values
    for state in ({"n": 7, "last": [None], "lo": 2, "recent": ["y", "x"]},):
        segments = [
            (T0 - 20, [1.0, ["a"], 1.0, 9.0, ["a"], 1.0]),  # before the snapshot: replaced by it
            (T0 + 10, [2.0, None, None, 4.0, ["z"], 1.0], state),  # hi absent from the snapshot: never written up to it
            (T0 + 20, [None, ["b"], 1.0, None, ["w"], 2.0]),
        ]
        assert fold_segments(FEATURES, segments) == [
            [1, "a", 1, 9, ["a"], 1],
            [9, None, 2, 4, ["z", "y"], 1],  # the window restarts: the segment holds all of the window holding t
            [9, "b", 1, 4, ["w", "z"], 3],
        ]
    assert fold_segments(FEATURES, [(T0, [None] * 6, {})]) == [[None, None, None, None, None, 0]]  # nothing yet at the snapshot


def test_fingerprint_is_the_ts_one():
    # sha1 of JSON.stringify([2, every, [[name, kind, n ?? null], ...]]): windows left out, numbers as JS prints them
    text = '[2,86400000,[["n","counter",null],["last","latest",null],["lo","min",null],["hi","max",null],["recent","last_n",2]]]'
    assert fingerprint(FEATURES, 86_400_000) == hashlib.sha1(text.encode()).hexdigest()[:16]
    assert fingerprint(FEATURES, 86_400_000.0) == fingerprint(FEATURES, 86_400_000)
    assert fingerprint([{**f, "n": 2.0} if f.get("n") else f for f in FEATURES], 86_400_000) == fingerprint(FEATURES, 86_400_000)
    assert fingerprint(FEATURES, 3_600_000) != fingerprint(FEATURES, 86_400_000)
    assert fingerprint([{"name": "été", "kind": "latest"}], 1000) == hashlib.sha1('[2,1000,[["été","latest",null]]]'.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "given, ms",
    [
        (1704103200000, 1704103200000),
        (1704103200000.7, 1704103200000.7),
        ("1704103200000", 1704103200000),
        (" 1704103200000 ", 1704103200000),
        ("2024-01-01T10:00:00Z", T0),
        ("2024-01-01T10:00:00.250Z", T0 + 250),
        ("2024-01-01T12:00:00+02:00", T0),
        ("2024-01-01T10:00:00", T0),  # naive: UTC
        ("2024-01-01", T0 - 10 * H),
        (dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc), T0),
        (dt.datetime(2024, 1, 1, 10), T0),
        (dt.date(2024, 1, 1), T0 - 10 * H),
    ],
)
def test_parse_time(given, ms):
    assert parse_time(given) == ms


@pytest.mark.parametrize("given", ["", "yesterday", None, True, [1], "2024-13-01"])
def test_parse_time_unreadable_is_nan(given):
    assert math.isnan(parse_time(given))


def test_parse_time_pandas_timestamps():
    pd = need_pandas()
    assert parse_time(pd.Timestamp("2024-01-01T10:00:00.001Z")) == T0 + 1
    assert parse_time(pd.Timestamp("2024-01-01T10:00:00")) == T0
    assert parse_time(pd.Series(pd.to_datetime(["2024-01-01T10:00:00Z"])).tolist()[0]) == T0


def test_check_asks_names_the_row():
    check_asks([("u1", T0)])
    with pytest.raises(ValueError, match=r"^row 2: expected a non-empty entity id, got 7 \(entity ids are the key's text"):
        check_asks([("u1", T0), (7, T0)])
    with pytest.raises(ValueError, match=r"^row 1: expected a timestamp \(epoch ms or ISO 8601\) for entity 'u1'"):
        check_asks([("u1", math.nan)])


def test_segments_sql_reads_one_partition_by_view_and_escapes_for_psycopg2():
    for snap in (False, True):
        sql = segments_sql("streamfleet", "feature_log", FEATURES, snap=snap)
        assert 'FROM "streamfleet"."feature_log" l' in sql
        assert "WHERE l.view = %(view)s AND l.entity = s.entity" in sql
        assert "ORDER BY l.event_time DESC" in sql and "ORDER BY l.event_time DESC" not in sql.split("FROM (")[0]  # aggregates read the sub-query's order
        # named psycopg2 placeholders (the snapshot query uses the view and the ids more than once); every other percent sign is doubled
        assert set(re.findall(r"%\((\w+)\)s", sql)) == ({"view", "entities", "times", "fp"} if snap else {"view", "entities", "times"})
        assert "%%" in sql and "%" not in re.sub(r"%\(\w+\)s|%%", "", sql)
    sql = segments_sql("streamfleet", "feature_log", FEATURES, snap=True)
    assert '"streamfleet"."feature_log__snapshots" sn' in sql and '"streamfleet"."feature_log__stale"' in sql and '"streamfleet"."feature_log__horizon"' in sql
    # with a window asked, the features without windows count only the rows after the snapshot; without one, no filter is needed
    assert "sum((l.c->>'n')::float8) FILTER (WHERE true AND (s.base IS NULL OR l.event_time > s.base)) AS f0" in sql
    assert "least(base, least(t - ((t %% 3600000) + 3600000) %% 3600000 - 1))" in sql
    plain = segments_sql("streamfleet", "feature_log", FEATURES[:5], snap=True)
    assert "s.base IS NULL OR" not in plain and "least(base)" in plain


def test_feature_defs_and_unknown_names():
    view = {"name": "v", "entity": "e", "features": FEATURES}
    assert [f["name"] for f in feature_defs(view, None)] == [f["name"] for f in FEATURES]
    assert [f["name"] for f in feature_defs(view, "hi")] == ["hi"]
    with pytest.raises(ValueError, match=r'^view "v" has no feature "nope" \(it has n, last, lo, hi, recent, c1h\)$'):
        feature_defs(view, ["hi", "nope"])


def test_historical_checks_before_it_connects():
    need_pandas()
    view = {"name": "v", "entity": "user", "features": FEATURES, "offline": {"schema": "s", "table": "t"}}
    online = {"name": "o", "entity": "user", "features": FEATURES}
    fc = FeatureClient(FakeRedis({"sf:v1:views": registry(view, online)}))
    with pytest.raises(ValueError, match=r'^expected a column "timestamp" in the rows \(they have entity, at\)'):
        fc.historical("v", [{"entity": "u1", "at": T0}])
    with pytest.raises(ValueError, match=r"^the rows already have column\(s\) n"):
        fc.historical("v", [{"entity": "u1", "timestamp": T0, "n": 1}])
    with pytest.raises(ValueError, match=r"^row 1: expected a non-empty entity id"):
        fc.historical("v", [{"entity": "", "timestamp": T0}])
    with pytest.raises(ValueError, match=r'^unknown feature view "nope"'):
        fc.historical("nope", [{"entity": "u1", "timestamp": T0}])
    with pytest.raises(ValueError, match=r"^historical retrieval needs the offline log's PostgreSQL"):
        fc.historical("v", [{"entity": "u1", "timestamp": T0}])
    fc = FeatureClient(FakeRedis({"sf:v1:views": registry(view, online)}), offline=object())
    with pytest.raises(ValueError, match=r'^feature view "o" has no offline log'):
        fc.historical("o", [{"entity": "u1", "timestamp": T0}])
