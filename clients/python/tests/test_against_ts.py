"""The Python client against the real Redis, on features the real redis.features sink wrote.

Run by test/integration/python-client.test.ts (npm test), which writes the features, reads them
with the TS FeatureClient and passes what it read here through the environment:
SF_TEST_REDIS_URL, SF_TEST_KEY_PREFIX, SF_TEST_CASES (a JSON file of cases: view, ids, names,
as_of and the TS client's answer) and SF_TEST_ACTUAL (a directory for this client's answers,
which the vitest test compares again). Run on its own, without those, the module is skipped.
"""

import json
import os

import pytest

ENV = ("SF_TEST_REDIS_URL", "SF_TEST_KEY_PREFIX", "SF_TEST_CASES", "SF_TEST_ACTUAL")
if not all(os.environ.get(k) for k in ENV):
    pytest.skip("needs the features test/integration/python-client.test.ts writes (run npm test)", allow_module_level=True)

import redis  # noqa: E402

from streamfleet_features import FeatureClient  # noqa: E402
from support import need_pandas  # noqa: E402

with open(os.environ["SF_TEST_CASES"], encoding="utf-8") as fh:
    CASES = json.load(fh)
PREFIX = os.environ["SF_TEST_KEY_PREFIX"]


def connect(decode: bool) -> redis.Redis:
    return redis.Redis.from_url(os.environ["SF_TEST_REDIS_URL"], decode_responses=decode)


def normal(x):
    """What the TS side sees: the answer through JSON."""
    return json.loads(json.dumps(x))


@pytest.fixture(scope="module", params=[True, False], ids=["decoded", "bytes"])
def client(request):
    r = connect(request.param)
    yield FeatureClient(r, key_prefix=PREFIX)
    r.close()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reads_what_the_ts_client_read(client, case):
    got = client.get_many(case["view"], case["ids"], case.get("names"), case.get("as_of"))
    assert normal(got) == case["expected"]
    for i, entity_id in enumerate(case["ids"]):  # one id: a plain HMGET, the same answer
        assert normal(client.get(case["view"], entity_id, case.get("names"), case.get("as_of"))) == case["expected"][i]
    with open(os.path.join(os.environ["SF_TEST_ACTUAL"], f"{case['name']}.json"), "w", encoding="utf-8") as fh:
        json.dump(got, fh)


def test_reads_the_registry_the_sink_wrote(client):
    view = CASES[0]["view"]
    assert view in client.views()
    features = [f["name"] for f in client.view(view)["features"]]
    with pytest.raises(ValueError) as err:
        client.get(view, "r1", names=["no_such_feature"])
    assert f'view "{view}" has no feature "no_such_feature" (it has {", ".join(features)})' == str(err.value)
    with pytest.raises(ValueError, match=rf'unknown feature view "nope" \(known views: .*{view}'):
        client.get("nope", "r1")


def test_get_frame_holds_the_same_values(client):
    need_pandas()
    case = next(c for c in CASES if len(c["ids"]) > 1 and not c.get("names"))
    frame = client.get_frame(case["view"], case["ids"], as_of=case.get("as_of"))
    assert list(frame.index) == case["ids"]
    for entity in case["expected"]:
        for name, feature in entity["features"].items():
            cell = frame.loc[entity["id"], name]
            if feature["value"] is None:
                assert cell is None or cell != cell  # None, or NaN in a numeric column
            else:
                assert normal(cell.item() if hasattr(cell, "item") else cell) == feature["value"]
