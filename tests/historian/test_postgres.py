"""PostgreSQL historian against the real server on 127.0.0.1:5432."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autofab.core.base import Quality, Sample, Tag
from autofab.errors import ConfigError
from autofab.historian.postgres import PostgresHistorian
from service_support import require_service

T0 = 1767592800.0  # 2026-01-05 06:00 UTC


@pytest.fixture
def hist():
    require_service("postgresql", 5432)
    h = PostgresHistorian.example()
    yield h
    h.drop()
    h.close()


def test_append_flush_query_dedup_latest(hist):
    hist.register_tags([Tag("s/a/l/c/e/temp", "degC", 0, 300)])
    samples = [Sample("s/a/l/c/e/temp", T0 + i, float(i)) for i in range(100)]
    assert hist.append(samples) == 100
    assert hist.append(samples[:10]) == 10  # duplicates: stored once
    assert hist.flush() == 110
    assert hist.row_count() == 100
    raw = hist.query(["s/a/l/c/e/temp"], T0 + 10, T0 + 20)
    assert list(raw.columns) == ["ts", "tag", "value", "quality"]
    assert raw["value"].tolist() == [float(i) for i in range(10, 20)]  # half-open window
    assert str(raw["ts"].dtype) == "datetime64[us, UTC]"
    agg = hist.query(["s/a/l/c/e/temp"], T0, T0 + 100, every=10.0, agg="mean")
    np.testing.assert_allclose(agg["s/a/l/c/e/temp"].to_numpy(), np.arange(10) * 10 + 4.5)
    last = hist.query(["s/a/l/c/e/temp"], T0, T0 + 100, every=25.0, agg="last")
    assert last["s/a/l/c/e/temp"].tolist() == [24.0, 49.0, 74.0, 99.0]
    latest = hist.latest(["s/a/l/c/e/temp", "s/a/l/c/e/none"])
    assert latest == {"s/a/l/c/e/temp": Sample("s/a/l/c/e/temp", T0 + 99, 99.0)}


def test_partitions_span_months_and_nan_is_null(hist):
    month = 31 * 86400.0
    hist.append([Sample("a/b", T0 + k * month, math.nan, Quality.BAD) for k in range(3)])
    hist.flush()
    parts = (
        hist._connect()
        .execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
            "WHERE c.relname = %s",
            (hist.table,),
        )
        .fetchone()[0]
    )
    assert parts == 3
    got = hist.latest(["a/b"])["a/b"]
    assert math.isnan(got.value) and got.quality is Quality.BAD


def test_outage_goes_to_buffer_and_is_forwarded_in_order(hist):
    good_dsn = hist.dsn
    hist.append([Sample("a/b", T0 + i, float(i)) for i in range(5)])
    hist.flush()
    hist._conn.close()
    hist.dsn = "postgresql://postgres@127.0.0.1:1/test"
    hist.connect_timeout_s = 1
    hist.append([Sample("a/b", T0 + i, float(i)) for i in range(5, 20)])
    assert hist.flush() == 0
    assert len(hist.buffer) == 1
    hist.dsn = good_dsn
    hist.append([Sample("a/b", T0 + 20, 20.0)])
    assert hist.flush() == 16
    assert hist.row_count() == 21 and len(hist.buffer) == 0


def test_bad_table_name_is_config_error():
    with pytest.raises(ConfigError, match="table"):
        PostgresHistorian("postgresql://x", table="Robert'); DROP TABLE x;--")


def test_repr_hides_password():
    require_service("postgresql", 5432)
    h = PostgresHistorian.example()
    try:
        h.dsn = "postgresql://user:topsecret@127.0.0.1:5432/test"
        assert "topsecret" not in repr(h)
    finally:
        h.dsn = "postgresql://postgres@127.0.0.1:5432/test"
        h.drop()
        h.close()
