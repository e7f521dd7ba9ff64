"""Test helpers: a dict-backed stand-in for the redis-py calls the client makes, and the pandas gate."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import pytest


class FakeRedis:
    def __init__(self, hashes: Dict[str, Dict[str, str]], as_bytes: bool = False) -> None:
        self.hashes = hashes
        self.as_bytes = as_bytes
        self.calls: List[str] = []

    def _out(self, v: Any) -> Any:
        return v.encode() if self.as_bytes and isinstance(v, str) else v

    def hgetall(self, key: str) -> Dict[Any, Any]:
        self.calls.append(f"hgetall {key}")
        return {self._out(k): self._out(v) for k, v in self.hashes.get(key, {}).items()}

    def hmget(self, key: str, fields: List[str]) -> List[Any]:
        self.calls.append(f"hmget {key}")
        h = self.hashes.get(key, {})
        return [self._out(h.get(f)) for f in fields]

    def pipeline(self, transaction: bool = True) -> "FakePipeline":
        assert transaction is False, "feature reads need no MULTI"
        self.calls.append("pipeline")
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.queued: List[Any] = []

    def hmget(self, key: str, fields: List[str]) -> "FakePipeline":
        self.queued.append((key, fields))
        return self

    def execute(self) -> List[Any]:
        return [self.redis.hmget(k, f) for k, f in self.queued]


def registry(*views: Dict[str, Any]) -> Dict[str, str]:
    return {v["name"]: json.dumps(v) for v in views}


def need_pandas() -> Any:
    """pandas, or a skip naming its package; under CI (npm test from .ci/run) it must be there."""
    if os.environ.get("CI") == "true":
        import pandas as pd

        return pd
    return pytest.importorskip("pandas", reason="apt-get install python3-pandas")
