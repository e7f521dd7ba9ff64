"""The read paths of the feature store for Python, mirroring lib/features/client.ts: online from Redis, historical from the offline log."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from .historical import CHUNK, check_asks, feature_defs, historical_chunks, parse_time
from .layout import WINDOW_KINDS, decode_features, entity_key, fields_to_read, store_of, views_key

Number = Union[int, float]
ViewDef = Dict[str, Any]
EntityFeatures = Dict[str, Any]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(raw: Union[str, bytes]) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw


class FeatureClient:
    """Reads feature views the ``redis.features`` sink writes, by the documented Redis layout.

    ``redis`` is a ``redis.Redis`` client (``decode_responses`` either way), or a
    ``redis.cluster.RedisCluster`` for a Redis Cluster (entity keys hash-tagged there, a batch
    read pipelined per node; ``cluster`` overrides the detection); the caller owns it.
    ``key_prefix`` is the sink's ``key_prefix``. Views come from the registry hash
    ``<key_prefix>sf:v1:views`` the sink writes (cached ``views_refresh_s`` seconds; an unknown
    view name re-reads it at once), or from ``views``, a fixed list of view definitions.
    ``now`` (epoch ms) is for tests.

    ``offline`` is for :meth:`historical`: a psycopg2 connection to the database of the views'
    offline feature log (the caller owns it), or a libpq connection string / URL
    (``postgresql://...``) the client connects to on first use and closes in :meth:`close`.
    """

    def __init__(
        self,
        redis: Any,
        key_prefix: str = "",
        views: Optional[Sequence[ViewDef]] = None,
        views_refresh_s: float = 5,
        *,
        now: Optional[Callable[[], Number]] = None,
        offline: Any = None,
        cluster: Optional[bool] = None,
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._cluster = _is_cluster(redis) if cluster is None else cluster
        self._fixed: Optional[Dict[str, ViewDef]] = {v["name"]: v for v in views} if views is not None else None
        self._refresh_ms = views_refresh_s * 1000
        self._now = now or _now_ms
        self._cached: Dict[str, ViewDef] = {}
        self._loaded_at: float = float("-inf")
        self._offline = offline
        self._owned_offline: Any = None

    @classmethod
    def from_url(cls, url: str, key_prefix: str = "", **kwargs: Any) -> "FeatureClient":
        """A client on its own connection: ``FeatureClient.from_url("redis://localhost:6379")``."""
        import redis  # the one dependency; imported here so layout stays importable without it

        return cls(redis.Redis.from_url(url), key_prefix, **kwargs)

    @classmethod
    def from_cluster(cls, nodes: str, key_prefix: str = "", *, username: Optional[str] = None, password: Optional[str] = None, **kwargs: Any) -> "FeatureClient":
        """A client on a Redis Cluster: ``nodes`` as REDIS_CLUSTER_NODES holds them, ``"host:port,host:port"``."""
        from redis.cluster import ClusterNode, RedisCluster

        seeds = []
        for entry in (n.strip() for n in nodes.split(",")):
            if not entry:
                continue
            host, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit():
                raise ValueError(f"expected host:port in the cluster nodes, got {entry!r}")
            seeds.append(ClusterNode(host.strip("[]"), int(port)))
        if not seeds:
            raise ValueError("expected at least one host:port in the cluster nodes")
        return cls(RedisCluster(startup_nodes=seeds, username=username, password=password), key_prefix, **kwargs)

    # -- views -------------------------------------------------------------------------------

    def views(self, force: bool = False) -> Dict[str, ViewDef]:
        """Every known view by name, from the fixed list or the registry."""
        if self._fixed is not None:
            return self._fixed
        if force or self._now() - self._loaded_at > self._refresh_ms:
            raw: Mapping[Any, Any] = self._redis.hgetall(views_key(self._prefix))
            fresh: Dict[str, ViewDef] = {}
            for name, text in raw.items():
                try:
                    fresh[_text(name)] = json.loads(_text(text))
                except ValueError:
                    pass  # a registry entry that is not JSON was not written by the sink; leave it out
            self._cached = fresh
            self._loaded_at = self._now()
        return self._cached

    def view(self, name: str) -> Optional[ViewDef]:
        """One view's definition; None when no sink registered it."""
        found = self.views().get(name)
        if found is None and self._fixed is None:
            found = self.views(force=True).get(name)
        return found

    def _resolve(self, view_name: str, ids: Sequence[str], names: Optional[Sequence[str]]) -> tuple:
        view = self.view(view_name)
        if view is None:
            known = sorted(self.views())
            where = f'under key_prefix "{self._prefix}"' if self._prefix else "(key_prefix empty)"
            has = f"known views: {', '.join(known)}" if known else f"no view is registered {where}: has a redis.features sink opened?"
            raise ValueError(f'unknown feature view "{view_name}" ({has})')
        if len(ids) == 0:
            raise ValueError("expected at least one entity id")
        for i in ids:
            if not isinstance(i, str) or i == "":
                raise ValueError(f"expected entity ids to be non-empty strings, got {i!r} (entity ids are the key's text: pass str(id))")
        every = [f["name"] for f in view["features"]]
        if isinstance(names, str):
            names = [names]
        chosen = list(names) if names else every
        unknown = [n for n in chosen if n not in every]
        if unknown:
            listed = ", ".join(json.dumps(n) for n in unknown)
            raise ValueError(f'view "{view_name}" has no feature {listed} (it has {", ".join(every)})')
        return view, chosen

    # -- reads -------------------------------------------------------------------------------

    def get(self, view: str, entity_id: str, names: Optional[Sequence[str]] = None, as_of: Optional[Number] = None) -> EntityFeatures:
        """One entity's features: ``{"id", "found", "features": {name: {value, event_time, staleness_ms[, window_start]}}}``.

        ``as_of`` (epoch ms, default now) picks the window windows read and the time staleness
        is measured from; it does not travel back in time (see the README).
        """
        v, chosen = self._resolve(view, [entity_id], names)
        at = self._now() if as_of is None else as_of
        reply = self._redis.hmget(entity_key(self._prefix, store_of(v), entity_id, self._cluster), fields_to_read(v, chosen, at))
        return self._entity(v, chosen, entity_id, reply, at)

    def get_many(self, view: str, ids: Sequence[str], names: Optional[Sequence[str]] = None, as_of: Optional[Number] = None) -> List[EntityFeatures]:
        """Features of ``ids`` in the order of ``ids``: one pipeline of one HMGET per entity (on a cluster, redis-py sends it per node)."""
        if isinstance(ids, (str, bytes)):
            raise ValueError("get_many expects a list of entity ids; for one id use get()")
        ids = list(ids)
        v, chosen = self._resolve(view, ids, names)
        at = self._now() if as_of is None else as_of
        wanted = fields_to_read(v, chosen, at)
        pipe = self._redis.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(entity_key(self._prefix, store_of(v), i, self._cluster), wanted)
        replies = pipe.execute()
        return [self._entity(v, chosen, i, reply, at) for i, reply in zip(ids, replies)]

    def get_frame(self, view: str, ids: Sequence[str], names: Optional[Sequence[str]] = None, as_of: Optional[Number] = None) -> Any:
        """A pandas DataFrame of feature values: one row per id (index named after the view's entity), one column per feature.

        Never-written features are missing (None, or NaN in a numeric column); windows read 0.
        """
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the machine
            raise ImportError("get_frame needs pandas: apt-get install python3-pandas, or pip install 'streamfleet-features[pandas]'") from err
        entities = self.get_many(view, ids, names, as_of)
        columns = list(entities[0]["features"])  # get_many answers at least one id
        rows = [[e["features"][n]["value"] for n in columns] for e in entities]
        return pd.DataFrame(rows, columns=columns, index=pd.Index([e["id"] for e in entities], name=self.view(view)["entity"]))

    # -- historical --------------------------------------------------------------------------

    def historical(
        self,
        view: str,
        rows: Any,
        names: Optional[Sequence[str]] = None,
        *,
        entity_column: str = "entity",
        time_column: str = "timestamp",
        chunk: int = CHUNK,
    ) -> Any:
        """Point-in-time features for a training set, from the view's offline feature log, as a pandas DataFrame.

        ``rows``: a DataFrame, or a list of dicts, with an entity id column (``entity_column``,
        text) and a time column (``time_column``: epoch ms, ISO 8601 text, ``datetime`` or
        pandas ``Timestamp``; naive times are UTC), plus any other columns (labels), which are
        kept. The answer has the same rows in the same order (a DataFrame keeps its index),
        the input's columns, then one column per requested feature (``names``, default all)
        holding its value as of the row's time: what the online store held once every record
        with event time ≤ that time had been applied, and nothing later. A feature with no data
        at or before the time is None (NaN in a numeric column); windows read 0. Same values as
        the TS client's ``historical``, the feature server's ``POST /v1/historical/{view}`` and
        ``streamfleet features export``.
        """
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the machine
            raise ImportError("historical needs pandas: apt-get install python3-pandas, or pip install 'streamfleet-features[historical]'") from err
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        for column in (entity_column, time_column):
            if column not in frame.columns:
                raise ValueError(f'expected a column "{column}" in the rows (they have {", ".join(map(str, frame.columns)) or "none"}); see entity_column=, time_column=')
        v = self.view(view)
        if v is None:
            self._resolve(view, ["-"], None)  # raises the unknown-view error of the online reads
        defs = feature_defs(v, names)
        clash = [f["name"] for f in defs if f["name"] in frame.columns]
        if clash:
            raise ValueError(f"the rows already have column(s) {', '.join(clash)}: rename them or ask for other names=")
        asks = [(e, parse_time(t)) for e, t in zip(frame[entity_column].tolist(), frame[time_column].tolist())]
        check_asks(asks)
        values: List[List[Any]] = []
        if asks:
            for part in historical_chunks(self._offline_connection(), v, defs, asks, chunk):
                values.extend(part)
        out = frame.copy()
        for f, d in enumerate(defs):
            out[d["name"]] = pd.Series([r[f] for r in values], index=frame.index, dtype=_dtype(d, values, f))
        return out

    def _offline_connection(self) -> Any:
        if self._offline is None:
            raise ValueError("historical retrieval needs the offline log's PostgreSQL: FeatureClient(..., offline=<psycopg2 connection or connection string>)")
        if not isinstance(self._offline, str):
            return self._offline
        if self._owned_offline is None or self._owned_offline.closed:
            try:
                import psycopg2
            except ImportError as err:  # pragma: no cover - depends on the machine
                raise ImportError("historical needs psycopg2: apt-get install python3-psycopg2, or pip install 'streamfleet-features[historical]'") from err
            self._owned_offline = psycopg2.connect(self._offline)
        return self._owned_offline

    def close(self) -> None:
        """Closes the PostgreSQL connection the client opened itself (never one it was given, nor Redis)."""
        if self._owned_offline is not None:
            self._owned_offline.close()
            self._owned_offline = None

    @staticmethod
    def _entity(view: ViewDef, names: List[str], entity_id: str, reply: Sequence[Any], as_of: Number) -> EntityFeatures:
        return {"id": entity_id, "found": any(r is not None for r in reply), "features": decode_features(view, names, reply, as_of)}


def _is_cluster(redis: Any) -> bool:
    """A redis-py RedisCluster (or a subclass), without importing redis."""
    return any(c.__name__ == "RedisCluster" for c in type(redis).__mro__)


def _dtype(feature: ViewDef, values: List[List[Any]], f: int) -> Any:
    """float64 for numeric kinds (None becomes NaN; windows are never None), object for latest/last_n."""
    if feature["kind"] in WINDOW_KINDS or feature["kind"] in ("counter", "min", "max"):
        return "float64" if any(r[f] is None or isinstance(r[f], float) for r in values) else "int64"
    return object
