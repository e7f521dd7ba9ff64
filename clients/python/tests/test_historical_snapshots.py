"""Historical reads that start from the offline log's snapshots (lib/features/snapshots.ts), on real PostgreSQL.

A log of every feature kind (integer amounts, so sums are exact whichever order they add in) is
read by this client before any snapshot exists; then the TS builder (``buildSnapshots``, through
snapshots_ts.ts under Node) builds them and the TS client reads the same rows. The Python answers
from the snapshots must equal both, and the snapshot path must really be taken: a snapshot made
wrong on purpose shows at its time, and only there. Snapshots a reader may not use (built for
another definition of the view, or at or after a late row) are left alone, and a log without
snapshot tables is read whole, inside the caller's transaction too.

Needs PostgreSQL (SF_TEST_DATABASE_URL, which npm test sets; e.g.
``postgresql://postgres@127.0.0.1:5432/test``) and Node ≥ 22.18 as ``npx node`` from the
repository root. Without SF_TEST_DATABASE_URL the module is skipped.
"""

import json
import math
import os
import random
import secrets
import subprocess

import pytest

from support import need_pandas

DATABASE_URL = os.environ.get("SF_TEST_DATABASE_URL")
if not DATABASE_URL:
    pytest.skip("needs PostgreSQL: SF_TEST_DATABASE_URL (npm test sets it)", allow_module_level=True)

import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402

from streamfleet_features import FeatureClient, segments_sql  # noqa: E402
from streamfleet_features.historical import feature_defs, fingerprint, historical_chunks, snapshot_read  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SCRIPT = os.path.join(os.path.dirname(__file__), "snapshots_ts.ts")
H = 3_600_000
DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ID = secrets.token_hex(4)
SCHEMA = f"s_pysnap_{ID}"
VIEW = {
    "name": f"pysnap_{ID}",
    "entity": "user",
    "features": [
        {"name": "orders", "kind": "counter"},
        {"name": "spent", "kind": "counter"},
        {"name": "last_item", "kind": "latest"},
        {"name": "note", "kind": "latest"},  # any JSON value, a null included
        {"name": "recent", "kind": "last_n", "n": 3},
        {"name": "max_amount", "kind": "max"},
        {"name": "min_amount", "kind": "min"},
        {"name": "orders_1h", "kind": "window_count", "window_ms": H, "buckets": 2},
        {"name": "amount_2d", "kind": "window_sum", "window_ms": 2 * DAY, "buckets": 2},  # a window longer than the period
        {"name": "refunds", "kind": "counter"},  # rare: absent from most snapshots
    ],
    "offline": {"schema": SCHEMA, "table": "feature_log"},
}
NAMES = [f["name"] for f in VIEW["features"]]
#: subsets asked besides all: without windows (segments start at the snapshot), and with one (they also hold the window's earlier rows)
SUBSETS = [["orders", "last_item", "recent", "refunds"], ["amount_2d", "min_amount", "note", "spent"]]
#: the same view with an unused feature more: a fingerprint no build made, so reads of the whole log
PROBE = {**VIEW, "features": VIEW["features"] + [{"name": "zz_probe", "kind": "counter"}]}


def ts(*steps):
    """Runs steps of snapshots_ts.ts (lib/features under Node); their results."""
    run = subprocess.run(["npx", "node", SCRIPT], input=json.dumps({"database": DATABASE_URL, "steps": list(steps)}), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def log_rows():
    """600 rows of u0..u4 over 8 days, in no time order: ties in event time, rows on period ends, integer amounts."""
    rng = random.Random(11)
    rows, times = [], []
    for i in range(600):
        roll = rng.random()
        t = rng.choice(times) if roll < 0.05 and times else T0 + rng.randrange(1, 9) * DAY if roll < 0.08 else T0 + rng.randrange(8 * DAY)
        times.append(t)
        amount = rng.randint(1, 90)
        c = {"orders": 1, "spent": amount, "last_item": f"i{i}", "recent": f"i{i}", "max_amount": amount, "min_amount": amount, "orders_1h": 1, "amount_2d": amount}
        if i % 3 == 0:
            c["note"] = rng.choice([None, {"k": i}, "text", [1, 2]])
        if i % 97 == 0:
            c["refunds"] = 1
        rows.append((VIEW["name"], f"u{rng.randrange(5)}", t, "c", "snap", 0, i, 0, json.dumps(c)))
    return rows


def asks_of(rows):
    """Asks of u0..u5 (u5 never written) at random times, period ends and next to them, the log's own event times, repeats."""
    rng = random.Random(7)
    out = [(f"u{rng.randrange(6)}", T0 - DAY + rng.randrange(12 * DAY)) for _ in range(300)]
    for d in range(11):
        out += [(f"u{d % 5}", T0 + d * DAY + k) for k in (-1, 0, 1)]
    out += [(r[1], r[2]) for r in rows[:60]]
    return out + out[:10]


def python(conn, view, asks, names=None, chunk=5000):
    return [v for part in historical_chunks(conn, view, feature_defs(view, names), asks, chunk) for v in part]


def as_ts(values):
    """Answers as the TS side sees them through JSON."""
    return json.loads(json.dumps(values))


@pytest.fixture(scope="module")
def conn():
    c = psycopg2.connect(DATABASE_URL)
    yield c
    c.rollback()
    with c.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    c.commit()
    c.close()


@pytest.fixture(scope="module")
def log(conn):
    """The log written, read before any snapshot, then snapshots built and read by TS: what the tests compare."""
    ts({"do": "prepare", "view": VIEW})
    rows = log_rows()
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(cur, f'INSERT INTO "{SCHEMA}".feature_log (view, entity, event_time, cluster, topic, partition, "offset", seq, contributions) VALUES %s', rows)
    conn.commit()
    asks = asks_of(rows)
    had = snapshot_read(conn, SCHEMA, "feature_log", VIEW["name"], VIEW["features"])
    conn.rollback()
    before = {None: python(conn, VIEW, asks), **{tuple(n): python(conn, VIEW, asks, n) for n in SUBSETS}}
    built, *reads = ts(
        {"do": "build", "view": VIEW, "now": T0 + 20 * DAY},
        {"do": "read", "view": VIEW, "asks": [{"entity": e, "t": t} for e, t in asks]},
        *({"do": "read", "view": VIEW, "asks": [{"entity": e, "t": t} for e, t in asks], "names": n} for n in SUBSETS),
        {"do": "read", "view": VIEW, "asks": [{"entity": e, "t": t} for e, t in asks], "chunk": 7},
    )
    return {"rows": rows, "asks": asks, "had": had, "before": before, "built": built, "reads": reads}


def snapshot_of(conn, entity, k):
    """The k-th snapshot (through, state) of an entity, oldest first."""
    with conn.cursor() as cur:
        cur.execute(f'SELECT through, state FROM "{SCHEMA}".feature_log__snapshots WHERE view = %s AND entity = %s ORDER BY through LIMIT 1 OFFSET %s', (VIEW["name"], entity, k))
        row = cur.fetchone()
    conn.rollback()
    return row


def set_state(conn, through, state):
    with conn.cursor() as cur:
        cur.execute(f'UPDATE "{SCHEMA}".feature_log__snapshots SET state = %s::jsonb WHERE view = %s AND entity = %s AND through = %s', (json.dumps(state), VIEW["name"], "u2", through))
        assert cur.rowcount == 1
    conn.commit()


def with_orders(state, n):
    """The state with its orders counter set to n."""
    return {**state, "orders": n}


def test_the_fingerprint_and_the_query_are_the_ts_ones():
    others = [
        VIEW,
        PROBE,
        {**VIEW, "features": [{"name": "über \"q\" \\ \t", "kind": "latest"}, {"name": "r", "kind": "last_n", "n": 5}]},
        {**VIEW, "features": [{"name": "w", "kind": "window_sum", "window_ms": H, "buckets": 2}]},
    ]
    asked = [NAMES, *SUBSETS, ["orders_1h", "amount_2d"]]
    fps, *sqls = ts({"do": "fingerprint", "views": others, "every": 6 * H}, *({"do": "sql", "view": VIEW, "names": n, "snap": s} for n in asked for s in (False, True)))
    assert [fingerprint(v["features"], 6 * H) for v in others] == fps
    placeholders = {"%(view)s": "$1", "%(entities)s": "$2", "%(times)s": "$3", "%(fp)s": "$4", "%%": "%"}

    def as_ts_text(sql):
        for ours, theirs in placeholders.items():
            sql = sql.replace(ours, theirs)
        return " ".join(sql.split())

    ours = [segments_sql(SCHEMA, "feature_log", feature_defs(VIEW, n), snap=s) for n in asked for s in (False, True)]
    assert [as_ts_text(q) for q in ours] == [" ".join(q.split()) for q in sqls]


def test_reads_from_snapshots_answer_as_before_and_as_the_ts_client(conn, log):
    assert log["had"] is None  # nothing built yet: the reads before folded the whole log
    assert log["built"]["written"] > 30 and log["built"]["horizon"] == T0 + 19 * DAY
    assert snapshot_read(conn, SCHEMA, "feature_log", VIEW["name"], VIEW["features"]) == fingerprint(VIEW["features"], DAY)
    conn.rollback()
    asks, before = log["asks"], log["before"]
    everything, *subsets, chunked = log["reads"]
    assert all(r["snapshots"] for r in log["reads"])
    # the asks meet data: counters, a null latest, a rare counter, windows
    assert any(v[0] is not None for v in before[None]) and any(v[7] != 0 for v in before[None]) and any(v[8] != 0 for v in before[None])
    assert any(v[9] is not None for v in before[None]) and any(v[3] is None and v[0] is not None for v in before[None])

    assert as_ts(python(conn, VIEW, asks)) == everything["values"] == as_ts(before[None])
    for names, read in zip(SUBSETS, subsets):
        assert as_ts(python(conn, VIEW, asks, names)) == read["values"] == as_ts(before[tuple(names)]), names
    assert as_ts(python(conn, VIEW, asks, chunk=7)) == chunked["values"] == as_ts(before[None])
    assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE  # no transaction left open

    # through the client, into a DataFrame
    pd = need_pandas()
    fc = FeatureClient(None, views=[VIEW], offline=conn)
    frame = fc.historical(VIEW["name"], pd.DataFrame({"entity": [e for e, _ in asks], "timestamp": [t for _, t in asks]}))
    cells = [[None if isinstance(x, float) and math.isnan(x) else x for x in row] for row in frame[NAMES].astype(object).values.tolist()]
    assert as_ts(cells) == everything["values"]


def test_reads_do_start_from_the_snapshots_and_skip_those_they_may_not_use(conn, log):
    through, state = snapshot_of(conn, "u2", 3)
    probe = [("u2", through), ("u2", through - 1), ("u2", through + 1)]
    truth = python(conn, PROBE, probe, NAMES)
    assert truth[0][0] is not None
    set_state(conn, through, with_orders(state, 1_000_000))
    try:
        at, just_before, after = python(conn, VIEW, probe)
        assert at[0] == 1_000_000 and at[1:] == truth[0][1:]
        assert just_before == truth[1]
        assert after[0] == 1_000_000 + (truth[2][0] - truth[0][0])  # the next ask of the request goes on from there
        # a read of another definition (here one more feature; or the period) does not use them
        assert python(conn, PROBE, probe, NAMES) == truth
        assert snapshot_read(conn, SCHEMA, "feature_log", VIEW["name"], PROBE["features"]) is None
        conn.rollback()
        # a late row at or before the snapshot, as a writer marks it: the entity's snapshots from then on are left alone
        with conn.cursor() as cur:
            cur.execute(f'INSERT INTO "{SCHEMA}".feature_log__stale (view, entity, event_time) VALUES (%s, %s, %s)', (VIEW["name"], "u2", through))
        conn.commit()
        assert python(conn, VIEW, probe) == truth
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DELETE FROM "{SCHEMA}".feature_log__stale WHERE view = %s', (VIEW["name"],))
        conn.commit()
        set_state(conn, through, state)
    assert python(conn, VIEW, log["asks"]) == log["before"][None]


def test_a_log_without_snapshot_tables_inside_the_callers_transaction_and_in_autocommit(conn, log):
    bare = {**VIEW, "offline": {"schema": SCHEMA, "table": "bare_log"}}
    with conn.cursor() as cur:
        cur.execute(f'CREATE TABLE "{SCHEMA}".bare_log (LIKE "{SCHEMA}".feature_log)')
        cur.execute(f'INSERT INTO "{SCHEMA}".bare_log SELECT * FROM "{SCHEMA}".feature_log WHERE entity = %s', ("u1",))
    conn.commit()
    probe = [("u1", T0 + k * DAY) for k in range(10)]
    expected = python(conn, PROBE, probe, NAMES)
    assert any(v[0] for v in expected)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")  # the caller's transaction: the read must leave it usable
    assert python(conn, bare, probe) == expected
    assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    with conn.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    conn.rollback()
    conn.autocommit = True
    try:
        assert python(conn, bare, probe) == expected
        assert python(conn, VIEW, probe) == expected  # and one with snapshots
    finally:
        conn.autocommit = False
