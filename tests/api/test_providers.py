"""Schedule and model providers as the dashboard reads them."""

from __future__ import annotations

from itertools import pairwise

from api_doubles import GanttDouble, ModelsDouble
from api_support import Api


def test_schedule_gantt_bars_do_not_overlap_per_resource(api: Api) -> None:
    t0 = api.runtime.clock.start_ts
    api.runtime.schedule = GanttDouble(t0)
    s = api.client.get("/api/schedule", headers=api.as_("viewer")).json()
    assert s["resources"] == ["inspection", "oven", "press"]
    assert len(s["bars"]) == 15
    for res in s["resources"]:
        bars = sorted((b["start"], b["end"]) for b in s["bars"] if b["resource"] == res)
        assert all(a[1] <= b[0] for a, b in pairwise(bars))
    assert min(b["start"] for b in s["bars"]) == t0


def test_models_list_and_activate_needs_engineer(api: Api) -> None:
    api.runtime.models = ModelsDouble()
    c = api.client
    models = c.get("/api/models", headers=api.as_("viewer")).json()
    assert models[0]["active_version"] == 2
    assert [v["validation"]["fit_percent"] for v in models[0]["versions"]] == [91.2, 95.7]
    body = {"version": 1, "reason": "v2 drifts at low load"}
    assert (
        c.put("/api/models/oven_zone1/active", json=body, headers=api.as_("operator")).status_code
        == 403
    )
    r = c.put("/api/models/oven_zone1/active", json=body, headers=api.as_("engineer"))
    assert r.status_code == 200 and (r.json()["old"], r.json()["new"]) == (2, 1)
    assert c.get("/api/models/oven_zone1", headers=api.as_("viewer")).json()["active_version"] == 1
    assert (
        c.put(
            "/api/models/oven_zone1/active", json={"version": 9}, headers=api.as_("engineer")
        ).status_code
        == 404
    )
