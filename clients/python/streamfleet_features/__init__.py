"""Read streamfleet feature views from Redis (the online store), by the documented key layout."""

from .client import FeatureClient
from .layout import bucket_start, decode_features, entity_key, fields_to_read, views_key

__all__ = ["FeatureClient", "bucket_start", "decode_features", "entity_key", "fields_to_read", "views_key"]
__version__ = "0.1.0"
