"""Historical retrieval against the real offline log in PostgreSQL, on rows the real sink recorded.

Run by test/integration/python-client.test.ts (npm test), which writes features through the
redis.features sink with an offline log, asks the TS FeatureClient's ``historical`` for rows and
passes its answers here: SF_TEST_REDIS_URL, SF_TEST_KEY_PREFIX, SF_TEST_DATABASE_URL,
SF_TEST_HISTORICAL (a JSON file of cases: view, rows, names, and the TS answer per row) and
SF_TEST_ACTUAL (a directory for this client's answers, compared again by the vitest test).
Run on its own, without those, the module is skipped.
"""

import datetime as dt
import json
import math
import os

import pytest

ENV = ("SF_TEST_REDIS_URL", "SF_TEST_KEY_PREFIX", "SF_TEST_DATABASE_URL", "SF_TEST_HISTORICAL", "SF_TEST_ACTUAL")
if not all(os.environ.get(k) for k in ENV):
    pytest.skip("needs the offline log test/integration/python-client.test.ts writes (run npm test)", allow_module_level=True)

import pandas as pd  # noqa: E402
import psycopg2  # noqa: E402
import redis  # noqa: E402

from streamfleet_features import FeatureClient  # noqa: E402

with open(os.environ["SF_TEST_HISTORICAL"], encoding="utf-8") as fh:
    CASES = json.load(fh)
PREFIX = os.environ["SF_TEST_KEY_PREFIX"]


def plain(x):
    """A DataFrame cell as the TS side would see it through JSON: NaN (a missing number) is null, numpy scalars are Python's."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if hasattr(x, "item") and not isinstance(x, (list, dict, str)):
        x = x.item()
        if isinstance(x, float) and math.isnan(x):
            return None
    return json.loads(json.dumps(x))


def answers(frame, names):
    return [{n: plain(frame.iloc[i][n]) for n in names} for i in range(len(frame))]


@pytest.fixture(scope="module")
def conn():
    c = psycopg2.connect(os.environ["SF_TEST_DATABASE_URL"])
    yield c
    c.close()


@pytest.fixture(scope="module")
def client(conn):
    r = redis.Redis.from_url(os.environ["SF_TEST_REDIS_URL"])
    yield FeatureClient(r, key_prefix=PREFIX, offline=conn)
    r.close()


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_historical_answers_what_the_ts_client_answered(client, conn, case):
    rows = pd.DataFrame([{"entity": r["entity"], "timestamp": r["t"], **{k: v for k, v in r.items() if k not in ("entity", "t", "features")}} for r in case["expected"]])
    rows.index = pd.Index([f"row{i}" for i in range(len(rows))], name="row")  # a DataFrame keeps its index
    frame = client.historical(case["view"], rows, case.get("names"))
    names = [n for n in frame.columns if n not in rows.columns]
    assert names == list(case["expected"][0]["features"])
    assert list(frame.index) == list(rows.index)
    pd.testing.assert_frame_equal(frame[list(rows.columns)], rows)  # the rows and their labels, untouched
    got = answers(frame, names)
    assert got == [r["features"] for r in case["expected"]]
    assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE  # no transaction left open
    with open(os.path.join(os.environ["SF_TEST_ACTUAL"], f"hist_{case['name']}.json"), "w", encoding="utf-8") as fh:
        json.dump(got, fh)

    # the same answers: in chunks of 3 rows, from a list of dicts with ISO 8601 times, through a connection string
    listed = [{"entity": r["entity"], "timestamp": iso(r["t"])} for r in case["expected"]]
    owned = FeatureClient(client._redis, key_prefix=PREFIX, offline=os.environ["SF_TEST_DATABASE_URL"])
    try:
        again = owned.historical(case["view"], listed, case.get("names"), chunk=3)
    finally:
        owned.close()
    assert list(again.index) == list(range(len(listed)))
    assert answers(again, names) == got


def test_a_view_without_offline_log_and_an_unknown_feature(client):
    view = CASES[0]["view"]
    with pytest.raises(ValueError, match=rf'^view "{view}" has no feature "nope"'):
        client.historical(view, [{"entity": "r1", "timestamp": 0}], ["nope"])
    online = os.environ.get("SF_TEST_ONLINE_VIEW")
    if online:
        with pytest.raises(ValueError, match=rf'^feature view "{online}" has no offline log'):
            client.historical(online, [{"entity": "r1", "timestamp": 0}])


def test_numeric_features_are_numeric_columns(client):
    case = CASES[0]
    rows = [{"entity": r["entity"], "timestamp": r["t"]} for r in case["expected"]]
    frame = client.historical(case["view"], rows)
    view = client.view(case["view"])
    for f in view["features"]:
        kind = f["kind"]
        if kind in ("counter", "min", "max", "window_count", "window_sum"):
            assert pd.api.types.is_numeric_dtype(frame[f["name"]]), f["name"]
        else:
            assert frame[f["name"]].dtype == object, f["name"]
