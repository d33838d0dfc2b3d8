"""Fuzzing the southbound decode paths: MQTT JSON and Sparkplug B payloads.

Whatever arrives, the connector never raises out of its message callback
(which would stop the MQTT link), rejects and counts what it cannot use with
a log line, keeps every sample it accepted before, and only ever puts
samples on its bus that the historians accept (valid path, finite ts).
"""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autofab.connectors.base import sample_problem
from autofab.connectors.mqtt import MqttConnector, MqttOptions, decode_sample
from autofab.connectors.sparkplug import SparkplugHost, SparkplugHostOptions
from autofab.connectors.sparkplug_pb import DataType, Payload
from autofab.core.base import Quality, Sample

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PREFIX = "acme/area1/line1"
TAG = f"{PREFIX}/oven/zone1/temp"
AFTER = f"{PREFIX}/oven/zone2/temp"

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
uns_objects = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": json_values,
        "value": json_values,
        "quality": st.one_of(json_values, st.sampled_from(["GOOD", "bad", "Uncertain", "x"])),
    },
)


def _payloads() -> st.SearchStrategy[bytes]:
    as_json = st.one_of(uns_objects, json_values).map(lambda v: json.dumps(v).encode())
    return st.one_of(
        as_json,
        st.binary(max_size=64),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    )


def _msg(topic: str, payload: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic=SimpleNamespace(value=topic), payload=payload)


def _good(i: int) -> bytes:
    return json.dumps({"timestamp": 1.7e9 + i, "value": float(i), "quality": "GOOD"}).encode()


@FUZZ
@given(_payloads())
def test_decode_sample_returns_a_usable_sample_or_a_clear_value_error(payload):
    try:
        s = decode_sample(TAG, payload, 1.7e9)
    except ValueError as exc:
        assert TAG in str(exc) or "JSON" in type(exc).__name__ or str(exc)
        return
    assert sample_problem(s) is None
    assert math.isfinite(s.ts) and isinstance(s.quality, Quality)
    assert math.isfinite(s.value) or math.isnan(s.value)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.one_of(st.just(TAG), st.text(max_size=30).map(lambda t: f"{PREFIX}/{t}")),
            _payloads(),
        ),
        max_size=12,
    )
)
def test_mqtt_connector_rejects_bad_messages_and_keeps_accepted_samples(messages):
    conn = MqttConnector(MqttOptions(), prefix=PREFIX, name="fuzz")
    sub = conn._bus.subscribe("#", 10_000)
    conn._on_message(_msg(TAG, _good(0)))  # accepted before the bad input
    for topic, payload in messages:
        conn._on_message(_msg(topic, payload))
    conn._on_message(_msg(AFTER, _good(10**6)))  # accepted after it
    got = sub.drain()
    assert got[0] == Sample(TAG, 1.7e9, 0.0, Quality.GOOD)
    assert got[-1] == Sample(AFTER, 1.7e9 + 10**6, float(10**6), Quality.GOOD)
    assert all(sample_problem(s) is None for s in got)
    assert conn.received == len(got)
    assert conn.received + conn.rejected + conn.duplicates == len(messages) + 2


def test_mqtt_rejection_is_logged_with_topic_and_reason(caplog):
    conn = MqttConnector(MqttOptions(), prefix=PREFIX, name="uns")
    with caplog.at_level(logging.WARNING):
        conn._on_message(_msg(TAG, b'{"timestamp": 1e400, "value": 1}'))
        conn._on_message(_msg(TAG, b"9" * 500))
        conn._on_message(_msg(f"{PREFIX}/bad topic!", _good(1)))
    assert conn.rejected == 3 and conn.received == 0
    text = caplog.text
    assert "rejected" in text and "timestamp" in text and "tag path" in text


metric_names = st.one_of(
    st.sampled_from(["temp", "zone1/temp", "", "a/b/c/d/e/f/g", "#", "温度"]),
    st.text(max_size=12),
)
metrics = st.fixed_dictionaries(
    {"name": metric_names},
    optional={
        "alias": st.integers(min_value=0, max_value=2**64 - 1),
        "timestamp": st.integers(min_value=0, max_value=2**64 - 1),
        "datatype": st.sampled_from([int(d) for d in DataType]),
        "double_value": st.floats(allow_nan=True, allow_infinity=True),
        "long_value": st.integers(min_value=0, max_value=2**64 - 1),
        "string_value": st.text(max_size=10),
        "is_null": st.booleans(),
    },
)


def _spb(seq: int, items: list[dict], ts: int = 1_700_000_000_000) -> bytes:
    p = Payload(timestamp=ts, seq=seq)
    for m in items:
        p.metrics.add(**m)
    return p.SerializeToString()


@settings(FUZZ, max_examples=80)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["DDATA", "DDATA", "DBIRTH", "NBIRTH", "NDEATH", "DDEATH", "XXX"]),
            st.one_of(
                st.binary(max_size=80),
                st.tuples(st.lists(metrics, max_size=4), st.integers(0, 2**64 - 1)),
            ),
            st.booleans(),  # next sequence number (else a random one)
            st.integers(0, 255),
        ),
        max_size=8,
    )
)
def test_sparkplug_host_survives_malformed_payloads_and_keeps_accepted_samples(messages):
    host = SparkplugHost(SparkplugHostOptions(group_id="g1"), name="spb", prefix=PREFIX)
    sub = host._bus.subscribe("#", 10_000)
    base = "spBv1.0/g1"
    host._on_message(_msg(f"{base}/NBIRTH/edge1", _spb(0, [])))
    host._on_message(
        _msg(
            f"{base}/DBIRTH/edge1/oven",
            _spb(1, [{"name": "temp", "alias": 1, "datatype": DataType.Double, "double_value": 1}]),
        )
    )
    accepted = sub.drain()
    assert [s.value for s in accepted] == [1.0]
    for kind, body, in_seq, seq in messages:
        if isinstance(body, tuple):
            node = host._nodes[("g1", "edge1")]
            body = _spb(((node.seq or 0) + 1) % 256 if in_seq else seq, body[0], body[1])
        host._on_message(_msg(f"{base}/{kind}/edge1/oven", body))
    later = sub.drain()
    assert all(sample_problem(s) is None for s in later)
    assert host._bus.latest(accepted[0].tag) is not None


def test_sparkplug_birth_with_an_invalid_metric_name_is_rejected_not_raised():
    """Found by the fuzzer: an empty metric name in a DBIRTH made Tag() raise."""
    host = SparkplugHost(SparkplugHostOptions(group_id="g1"), name="spb", prefix=PREFIX)
    base = "spBv1.0/g1"
    host._on_message(_msg(f"{base}/NBIRTH/edge1", _spb(0, [])))
    birth = [
        {"name": "", "alias": 2, "datatype": DataType.Double, "double_value": 5},
        {"name": "temp", "alias": 1, "datatype": DataType.Double, "double_value": 1},
    ]
    host._on_message(_msg(f"{base}/DBIRTH/edge1/oven", _spb(1, birth)))
    assert host.rejected == 1
    assert [t.path for t in host.tags] == [f"{PREFIX}/oven/temp"]
