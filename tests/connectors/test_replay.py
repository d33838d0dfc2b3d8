import math

import pandas as pd
import pytest

from autofab.connectors.replay import ReplayConnector
from autofab.core import Quality
from autofab.errors import ConfigError, ConnectorError


@pytest.fixture
def wide_csv(tmp_path):
    p = tmp_path / "rec.csv"
    pd.DataFrame(
        {
            "ts": pd.date_range("2026-03-01T00:00:00Z", periods=5, freq="2s"),
            "oven/zone1/temperature": [20.0, 21.0, float("nan"), 23.0, 24.0],
            "oven/zone1/power": [1.0, 1.0, 2.0, 2.0, 3.0],
        }
    ).to_csv(p, index=False)
    return p


async def test_wide_file_replays_on_runtime_clock(wide_csv):
    c = ReplayConnector(wide_csv, "acme/a/l1", period=1.0)
    assert {t.path for t in c.tags} == {
        "acme/a/l1/oven/zone1/temperature",
        "acme/a/l1/oven/zone1/power",
    }
    await c.connect()
    t0 = 1000.0
    first = await c.step(t0)
    assert [(s.ts, s.value) for s in first if s.tag.endswith("temperature")] == [(t0, 20.0)]
    assert await c.step(t0 + 1) == []
    third = [s for s in await c.step(t0 + 4) if s.tag.endswith("temperature")]
    assert [s.ts for s in third] == [t0 + 2, t0 + 4]
    assert third[0].value == 21.0
    assert math.isnan(third[1].value) and third[1].quality is Quality.BAD
    with pytest.raises(ConnectorError, match="read-only"):
        await c.write("acme/a/l1/oven/zone1/power", 1.0)


async def test_loop_wraps_around(wide_csv):
    c = ReplayConnector(wide_csv, "acme/a/l1", period=2.0, loop=True)
    await c.connect()
    n = 0
    for k in range(10):
        n += len(await c.step(1000.0 + 2 * k))
    assert n == 2 * 10  # two tags, one row every 2 s, replayed twice


def test_bad_timestamp_names_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("ts,a/b\n2026-01-01T00:00:00Z,1\nyesterday,2\n")
    with pytest.raises(ConfigError, match=r"bad.csv:3: ts: unreadable timestamp"):
        ReplayConnector(p, "acme/a/l1")
