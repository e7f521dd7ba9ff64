"""Decoding of the documented layout (docs/feature-store.md), without Redis."""

import math

from streamfleet_features.layout import bucket_start, decode_features, entity_key, fields_to_read, parse_json, parse_number, views_key

HOUR = 3_600_000
T0 = 1_704_103_200_000  # 2024-01-01T10:00:00Z, the start of an hourly window

VIEW = {
    "name": "activity",
    "entity": "resident",
    "features": [
        {"name": "n", "kind": "counter"},
        {"name": "last", "kind": "latest"},
        {"name": "recent", "kind": "last_n", "n": 3},
        {"name": "c1h", "kind": "window_count", "window_ms": HOUR, "buckets": 2},
        {"name": "s1h", "kind": "window_sum", "window_ms": HOUR, "buckets": 2},
    ],
}


def test_keys_follow_the_layout():
    assert views_key("") == "sf:v1:views"
    assert views_key("test:x:") == "test:x:sf:v1:views"
    assert entity_key("p:", "activity", "r1") == "p:sf:v1:fv:activity:r1"


def test_windows_are_epoch_aligned_and_the_boundary_belongs_to_the_next():
    assert bucket_start(T0 + HOUR - 1, HOUR) == T0
    assert bucket_start(T0 + HOUR, HOUR) == T0 + HOUR
    assert bucket_start(-1, HOUR) == -HOUR  # floor, as Math.floor, not truncation
    assert bucket_start(T0 + 0.5, HOUR) == T0


def test_fields_to_read_name_the_window_holding_as_of_and_every_event_time():
    got = fields_to_read(VIEW, ["n", "c1h", "recent"], T0 + HOUR + 5)
    assert got == ["n", "n@t", f"c1h|{T0 + HOUR}", "c1h@t", "recent", "recent@t"]


def test_never_written_reads_none_but_windows_read_zero():
    names = ["n", "last", "recent", "c1h", "s1h"]
    got = decode_features(VIEW, names, [None] * 10, T0)
    assert got["n"] == {"value": None, "event_time": None, "staleness_ms": None}
    assert got["last"] == {"value": None, "event_time": None, "staleness_ms": None}
    assert got["recent"]["value"] is None
    assert got["c1h"] == {"value": 0, "event_time": None, "staleness_ms": None, "window_start": T0}
    assert got["s1h"]["value"] == 0


def test_values_decode_by_kind():
    names = ["n", "last", "recent", "c1h", "s1h"]
    reply = ["3", str(T0 + 1), '{"a":[1,2]}', str(T0 + 2), '["c","b","a"]', str(T0 + 3), "2", str(T0 + 4), "2.5", str(T0 + 5)]
    got = decode_features(VIEW, names, reply, T0 + 10)
    assert got["n"] == {"value": 3, "event_time": T0 + 1, "staleness_ms": 9}
    assert isinstance(got["n"]["value"], int) and isinstance(got["n"]["event_time"], int)
    assert got["last"]["value"] == {"a": [1, 2]}
    assert got["recent"]["value"] == ["c", "b", "a"]  # newest first, as stored
    assert got["c1h"] == {"value": 2, "event_time": T0 + 4, "staleness_ms": 6, "window_start": T0}
    assert got["s1h"]["value"] == 2.5


def test_bytes_replies_decode_like_text():
    got = decode_features(VIEW, ["last", "s1h"], [b'"leak"', str(T0).encode(), b"1e+20", str(T0).encode()], T0)
    assert got["last"]["value"] == "leak"
    assert got["s1h"]["value"] == 1e20


def test_staleness_is_never_negative():
    got = decode_features(VIEW, ["n"], ["1", str(T0 + 500)], T0)  # an event time ahead of as_of (clock skew)
    assert got["n"]["staleness_ms"] == 0


def test_text_that_is_not_json_is_returned_as_is_like_json_parse():
    assert parse_json("leak") == "leak"
    assert parse_json("NaN") == "NaN"  # JSON.parse rejects NaN; so does this reader
    assert parse_json("null") is None
    assert parse_json("1.5") == 1.5


def test_a_window_sum_that_is_no_number_reads_nan_like_number():
    got = decode_features(VIEW, ["s1h"], ["oops", "oops"], T0)
    assert math.isnan(got["s1h"]["value"])
    assert math.isnan(got["s1h"]["staleness_ms"])  # Math.max(0, NaN) is NaN


def test_numbers_read_as_js_number_reads_them():
    assert parse_number("19") == 19 and isinstance(parse_number("19"), int)
    assert parse_number(" 2.5 ") == 2.5
    assert parse_number("5.") == 5 and parse_number(".5") == 0.5
    assert parse_number("1e+20") == 1e20
    assert parse_number("") == 0
    assert parse_number("0x10") == 16
    assert parse_number("-Infinity") == -math.inf
    assert parse_number("9007199254740993") == 9007199254740992.0  # beyond 2**53: a double, as in JS
    for text in ("1_000", "infinity", "-0x10", "\u0661\u0662", "3 apples"):  # Python's int()/float() take some of these; Number() does not
        assert math.isnan(parse_number(text)), text
