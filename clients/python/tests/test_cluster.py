"""A Redis Cluster client reads the hash-tagged entity keys (docs/feature-store.md, "Redis Cluster")."""

import pytest

from support import FakeRedis, registry
from streamfleet_features import FeatureClient
from streamfleet_features.layout import entity_key

VIEW = {"name": "activity", "entity": "resident", "features": [{"name": "n", "kind": "counter"}]}


class RedisCluster(FakeRedis):
    """Stands in for redis.cluster.RedisCluster: the client knows a cluster by the class name."""


def test_entity_key_forms():
    assert entity_key("p:", "activity", "r1") == "p:sf:v1:fv:activity:r1"
    assert entity_key("p:", "activity", "r1", cluster=True) == "p:sf:v1:fv:activity:{r1}"


def test_a_cluster_client_reads_the_tagged_keys():
    hashes = {"sf:v1:views": registry(VIEW), "sf:v1:fv:activity:{r1}": {"n": "2", "n@t": "5"}, "sf:v1:fv:activity:r1": {"n": "99"}}
    client = FeatureClient(RedisCluster(hashes), now=lambda: 10)
    assert client.get("activity", "r1")["features"]["n"] == {"value": 2, "event_time": 5, "staleness_ms": 5}
    assert [e["features"]["n"]["value"] for e in client.get_many("activity", ["r1", "r2"])] == [2, None]
    # a plain client keeps the single-Redis keys; `cluster=` overrides the detection
    assert FeatureClient(FakeRedis(hashes)).get("activity", "r1")["features"]["n"]["value"] == 99
    assert FeatureClient(FakeRedis(hashes), cluster=True).get("activity", "r1")["features"]["n"]["value"] == 2


@pytest.mark.parametrize("nodes", ["", "127.0.0.1", "127.0.0.1:x", " , "])
def test_from_cluster_names_a_bad_node_list(nodes):
    with pytest.raises(ValueError, match="host:port"):
        FeatureClient.from_cluster(nodes)
