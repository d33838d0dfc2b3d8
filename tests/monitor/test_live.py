import json

import numpy as np
import pytest

from autofab.core import Sample, Tag
from autofab.errors import ConfigError
from autofab.monitor.live import LiveMonitor

TAGS = [Tag(f"acme/oven/s{i}", unit="degC") for i in range(4)] + [Tag("acme/oven/qc", unit="mm")]


def section():
    return {
        "alarms": [{"tag": "acme/oven/s0", "hi": 5.0, "deadband": 0.5, "priority": "high"}],
        "spc": [{"tag": "acme/oven/qc", "lsl": 9.0, "usl": 11.0, "phase1": 30, "rules": "nelson"}],
        "detectors": [
            {
                "name": "oven",
                "tags": [t.path for t in TAGS[:4]],
                "train_minutes": 100,
                "alpha": 0.01,
            }
        ],
    }


def test_config_errors_name_fields():
    with pytest.raises(ConfigError, match=r"monitor\.alarms\.0\.tag"):
        LiveMonitor.from_config({"alarms": [{"tag": "acme/nope", "hi": 1}]}, TAGS, "s.yaml")
    with pytest.raises(ConfigError, match=r"monitor\.spc\.0\.chart"):
        LiveMonitor.from_config({"spc": [{"tag": "acme/oven/qc", "chart": "xyz"}]}, TAGS)
    with pytest.raises(ConfigError, match=r"monitor\.bogus"):
        LiveMonitor.from_config({"bogus": 1}, TAGS)
    with pytest.raises(ConfigError, match=r"monitor\.detectors\.0\.model"):
        LiveMonitor.from_config(
            {"detectors": [{"name": "d", "tags": ["acme/oven/s0"], "model": "/no/such.json"}]}, TAGS
        )


def test_live_run_alarms_spc_detector():
    mon = LiveMonitor.from_config(section(), TAGS)
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(2, 4))
    events = []
    f = np.zeros(2)
    for k in range(600):
        t = 60.0 * k
        f = 0.8 * f + rng.normal(size=2)
        x = f @ mix + 0.2 * rng.normal(size=4)
        if k >= 400:
            x[3] += 6.0  # fault after training
        qc = 10.0 + 0.1 * rng.normal() + (0.5 if k >= 500 else 0.0)
        samples = [Sample(p.path, t, float(v)) for p, v in zip(TAGS[:4], x, strict=True)]
        samples.append(Sample("acme/oven/qc", t, qc))
        events += mon.observe(t, samples)
    rep = mon.report()
    json.dumps(rep)
    det = rep["detectors"]["oven"]
    assert det["fitted"] and det["rows_flagged"] >= 150
    assert any(e.tag == "oven" for e in events)
    spc = rep["spc"]["acme/oven/qc"]
    assert sum(spc["violations"].values()) > 0
    assert 0 < spc["cpk"] < spc["cp"]
    assert rep["alarms"]["alarms"] >= 2
    assert rep["alarms"]["rate_per_operator_hour"] > 0
    active = {a["alarm_id"] for a in mon.alarms.active()}
    assert "detector:oven" in active
    ev = mon.alarms.acknowledge("detector:oven", "op1")
    assert ev is not None and ev.user == "op1"


@pytest.mark.parametrize("method", ["cva", "fault_signature", "signature_cva"])
def test_live_detector_accepts_new_methods(method):
    sec = {
        "detectors": [
            {"name": "d", "tags": [t.path for t in TAGS[:4]], "train_minutes": 60, "method": method}
        ]
    }
    mon = LiveMonitor.from_config(sec, TAGS)
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(2, 4))
    f = np.zeros(2)
    for k in range(200):
        f = 0.8 * f + rng.normal(size=2)
        x = f @ mix + 0.2 * rng.normal(size=4)
        if k >= 150:
            x[1] += 8.0
        row = [Sample(p.path, 60.0 * k, float(v)) for p, v in zip(TAGS[:4], x, strict=True)]
        mon.observe(60.0 * k, row)
    det = mon.report()["detectors"]["d"]
    assert det["fitted"] and det["error"] == ""
    assert det["rows_flagged"] >= 40
