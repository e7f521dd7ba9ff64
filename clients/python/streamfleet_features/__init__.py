"""Read streamfleet feature views: online from Redis by the documented key layout, historical from the offline feature log."""

from .client import FeatureClient
from .historical import fold_segments, parse_time, segments_sql
from .layout import bucket_start, decode_features, entity_key, fields_to_read, views_key

__all__ = ["FeatureClient", "bucket_start", "decode_features", "entity_key", "fields_to_read", "fold_segments", "parse_time", "segments_sql", "views_key"]
__version__ = "0.1.0"
