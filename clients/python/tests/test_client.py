"""FeatureClient against a dict-backed Redis: the registry, request checks, one pipeline for many ids."""

import json

import pytest

from support import FakeRedis, need_pandas, registry
from streamfleet_features import FeatureClient

HOUR = 3_600_000
T0 = 1_704_103_200_000
VIEW = {
    "name": "activity",
    "entity": "resident",
    "features": [{"name": "n", "kind": "counter"}, {"name": "c1h", "kind": "window_count", "window_ms": HOUR, "buckets": 2}],
}


class Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def store(prefix: str = "", **extra):
    return {f"{prefix}sf:v1:views": registry(VIEW), f"{prefix}sf:v1:fv:activity:r1": {"n": "2", "n@t": str(T0 + 1), f"c1h|{T0}": "2", "c1h@t": str(T0 + 1)}, **extra}


@pytest.mark.parametrize("as_bytes", [False, True])
def test_get_reads_the_registry_and_one_hash(as_bytes):
    r = FakeRedis(store("p:"), as_bytes=as_bytes)
    got = FeatureClient(r, key_prefix="p:").get("activity", "r1", as_of=T0 + 11)
    assert got == {
        "id": "r1",
        "found": True,
        "features": {
            "n": {"value": 2, "event_time": T0 + 1, "staleness_ms": 10},
            "c1h": {"value": 2, "event_time": T0 + 1, "staleness_ms": 10, "window_start": T0},
        },
    }
    assert r.calls == ["hgetall p:sf:v1:views", "hmget p:sf:v1:fv:activity:r1"]


def test_get_many_keeps_the_order_of_ids_in_one_pipeline():
    r = FakeRedis(store())
    got = FeatureClient(r).get_many("activity", ["ghost", "r1"], names=["n"], as_of=T0 + 1)
    assert [(e["id"], e["found"], e["features"]["n"]["value"]) for e in got] == [("ghost", False, None), ("r1", True, 2)]
    assert r.calls.count("pipeline") == 1


def test_default_as_of_is_now():
    got = FeatureClient(FakeRedis(store()), now=Clock(T0 + HOUR)).get("activity", "r1")
    assert got["features"]["c1h"] == {"value": 0, "event_time": T0 + 1, "staleness_ms": HOUR - 1, "window_start": T0 + HOUR}


def test_the_registry_is_cached_and_an_unknown_view_rereads_it():
    r = FakeRedis(store())
    clock = Clock(T0)
    c = FeatureClient(r, views_refresh_s=5, now=clock)
    c.get("activity", "r1")
    c.get("activity", "r1")
    assert r.calls.count("hgetall sf:v1:views") == 1
    clock.t += 5_001
    c.get("activity", "r1")
    assert r.calls.count("hgetall sf:v1:views") == 2
    later = dict(VIEW, name="later")
    r.hashes["sf:v1:views"]["later"] = json.dumps(later)  # a sink registers a view meanwhile
    assert c.get("later", "r1", names="n")["features"]["n"]["value"] is None
    assert r.calls.count("hgetall sf:v1:views") == 3


def test_fixed_views_never_read_the_registry():
    r = FakeRedis(store())
    c = FeatureClient(r, views=[VIEW])
    assert c.get("activity", "r1", as_of=T0)["features"]["n"]["value"] == 2
    with pytest.raises(ValueError, match=r'unknown feature view "other" \(known views: activity\)'):
        c.get("other", "r1")
    assert not any(call.startswith("hgetall") for call in r.calls)


def test_a_registry_entry_that_is_not_json_is_left_out():
    r = FakeRedis(store(**{}))
    r.hashes["sf:v1:views"]["broken"] = "{not json"
    assert sorted(FeatureClient(r).views()) == ["activity"]


def test_unknown_views_and_features_name_what_exists():
    c = FeatureClient(FakeRedis(store()))
    with pytest.raises(ValueError, match=r'unknown feature view "nope" \(known views: activity\)'):
        c.get("nope", "r1")
    with pytest.raises(ValueError, match=r'view "activity" has no feature "x", "y" \(it has n, c1h\)'):
        c.get_many("activity", ["r1"], names=["n", "x", "y"])
    with pytest.raises(ValueError, match=r'no view is registered under key_prefix "q:"'):
        FeatureClient(FakeRedis({}), key_prefix="q:").get("activity", "r1")


def test_ids_must_be_non_empty_strings():
    c = FeatureClient(FakeRedis(store()))
    with pytest.raises(ValueError, match="at least one entity id"):
        c.get_many("activity", [])
    with pytest.raises(ValueError, match=r"non-empty strings, got 7"):
        c.get_many("activity", ["r1", 7])
    with pytest.raises(ValueError, match="non-empty strings"):
        c.get("activity", "")
    with pytest.raises(ValueError, match="for one id use get"):
        c.get_many("activity", "r1")


def test_get_frame_has_a_row_per_id_and_a_column_per_feature():
    pd = need_pandas()
    frame = FeatureClient(FakeRedis(store())).get_frame("activity", ["r1", "ghost"], as_of=T0 + 5)
    assert list(frame.columns) == ["n", "c1h"]
    assert list(frame.index) == ["r1", "ghost"] and frame.index.name == "resident"
    assert frame.loc["r1", "n"] == 2 and pd.isna(frame.loc["ghost", "n"])
    assert frame.loc["ghost", "c1h"] == 0
