"""Transport benchmark: planned fleet manager against the nearest-idle baseline.

Fleets of 5, 20 and 50 robots on the OIS-line floor and on a generated grid floor. Station
demand scales with the fleet (each station's rate x n/5) so that every fleet is loaded.
Both policies run the same floor, demand and seed in the same run. Prints a table and
writes ``bench/results/transport.json``.

Every run gets the same two events: an aisle blocked from 1/3 of the horizon for 5 minutes
and robot R1 broken down from 1/2 of the horizon for 5 minutes; the table shows the longest
re-plan after them. Planned mode uses a rolling horizon of ``--window-grid`` steps on the
grid floor and ``--window-line`` on the OIS line (default 16; 0: whole tasks at once); the
rolling re-plans are timed and reported per request besides the allocation + first plan.

Usage: ``PYTHONPATH=$PWD/src python bench/transport.py [--hours 1] [--fleets 5,20,50]``
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from autofab.plan.transport import (
    FleetEvent,
    FleetManager,
    FleetSettings,
    FloorGraph,
    NodeKind,
    RobotSpec,
    StationModel,
    floor_area,
    grid_floor,
    ois_line_floor,
    transport_kpis,
)

LIMIT_PLAN_MS = 100.0


def _central_aisle(floor: FloorGraph) -> tuple[str, str]:
    """The aisle edge nearest the middle of the floor (the one the benchmark blocks)."""
    nd = floor.nodes
    xs = [n.x for n in nd.values()]
    ys = [n.y for n in nd.values()]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2

    def off(k: tuple[str, str]) -> float:
        a, b = nd[k[0]], nd[k[1]]
        return ((a.x + b.x) / 2 - cx) ** 2 + ((a.y + b.y) / 2 - cy) ** 2

    aisles = [k for k in floor.edges if nd[k[0]].kind == nd[k[1]].kind == NodeKind.AISLE]
    return min(sorted(aisles), key=off)


def run_one(
    floor_name: str, n: int, mode: str, hours: float, seed: int, window: int = 0
) -> dict[str, object]:
    """Run one configuration and return its KPIs."""
    if floor_name == "ois_line":
        floor = ois_line_floor(n_parking=max(n, 6))
        n_st = 6
        aisle = "u8|u9"
    else:
        floor = grid_floor(n_parking=max(n, 6), seed=seed)
        n_st = 12
        aisle = "|".join(_central_aisle(floor))
    horizon = hours * 3600.0
    events = [
        FleetEvent(horizon / 3, "block", aisle),
        FleetEvent(horizon / 3 + 300, "unblock", aisle),
        FleetEvent(horizon / 2, "breakdown", "R1"),
        FleetEvent(horizon / 2 + 300, "repair", "R1"),
    ]
    base_rate = 1 / 30 if floor_name == "ois_line" else 1 / 60
    stations = [StationModel(f"S{i + 1}", rate_per_s=base_rate * n / 5) for i in range(n_st)]
    settings = FleetSettings(mode=mode, n_robots=n, dt_s=2.0, seed=seed, window_steps=window)
    fm = FleetManager(floor, RobotSpec(), settings, stations)
    t0 = time.perf_counter()
    res = fm.run(horizon, events)
    wall = time.perf_counter() - t0
    k = transport_kpis(res)
    area = floor_area(floor, n)
    out = asdict(k)
    out.update(
        floor=floor_name,
        n_robots=n,
        mode=mode,
        wall_s=wall,
        starvation_total_min=sum(k.starvation_min.values()),
        units_per_h=res.units_out / hours,
        area=area,
        window_steps=window if mode == "planned" else 0,
        rolling_ms_per_request=res.rolling_plan_s * 1e3 / max(1, len(res.assigned_s)),
        event_replan_ms_max=max((s for _, _, s in fm.event_replan_s), default=0.0) * 1e3,
    )
    return out


def main() -> None:
    """Run the benchmark grid and print the comparison."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--fleets", default="5,20,50")
    ap.add_argument("--floors", default="ois_line,grid")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window-grid", type=int, default=16)
    ap.add_argument("--window-line", type=int, default=16)
    a = ap.parse_args()
    rows = []
    hdr = (
        f"{'floor':9} {'n':>3} {'mode':8} {'req':>5} {'done':>5} {'thr/h':>6} {'lead':>6} "
        f"{'p95':>6} {'late%':>6} {'util':>5} {'empty':>5} {'starv':>7} {'units/h':>8} "
        f"{'plan ms':>8} {'p95 ms':>7} {'roll ms':>7} {'replan':>7} {'event':>6} {'dlk':>4} "
        f"{'wall s':>6}"
    )
    print(hdr)
    for fl in a.floors.split(","):
        for n in (int(x) for x in a.fleets.split(",")):
            pair = {}
            for mode in ("planned", "baseline"):
                w = a.window_grid if fl == "grid" else a.window_line
                r = run_one(fl, n, mode, a.hours, a.seed, w)
                pair[mode] = r
                rows.append(r)
                print(
                    f"{fl:9} {n:>3} {mode:8} {r['requests']:>5} {r['delivered']:>5} "
                    f"{r['throughput_per_h']:>6.0f} {r['lead_mean_s']:>6.0f} "
                    f"{r['lead_p95_s']:>6.0f} {100 * r['late_share']:>6.1f} "
                    f"{r['utilisation']:>5.2f} {r['empty_travel_share']:>5.2f} "
                    f"{r['starvation_total_min']:>7.1f} {r['units_per_h']:>8.0f} "
                    f"{r['plan_ms_mean']:>8.2f} {r['plan_ms_p95']:>7.2f} "
                    f"{r['rolling_ms_per_request']:>7.1f} {r['replan_ms_max']:>7.1f} "
                    f"{r['event_replan_ms_max']:>6.1f} {r['deadlocks']:>4} {r['wall_s']:>6.1f}",
                    flush=True,
                )
            p, b = pair["planned"], pair["baseline"]
            ratio = p["lead_mean_s"] / b["lead_mean_s"] if b["lead_mean_s"] else float("nan")
            ok = p["plan_ms_p95"] <= LIMIT_PLAN_MS
            per_req = p["plan_ms_mean"] + p["rolling_ms_per_request"]
            ok_all = per_req <= LIMIT_PLAN_MS
            print(
                f"  -> lead planned/baseline {ratio:.2f}; units/h planned/baseline "
                f"{p['units_per_h'] / max(b['units_per_h'], 1e-9):.2f}; plan p95 "
                f"{p['plan_ms_p95']:.1f} ms vs limit {LIMIT_PLAN_MS:.0f} ms "
                f"({'ok' if ok else 'MISSED'}); with rolling re-plans {per_req:.1f} ms/request "
                f"({'ok' if ok_all else 'MISSED'}); longest event re-plan "
                f"{p['event_replan_ms_max']:.0f} ms vs 1000; area fleet/conveyor "
                f"{p['area']['fleet_m2']:.0f}/{p['area']['conveyor_m2']:.0f} m2 "
                f"= {p['area']['ratio']:.2f}"
            )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "transport.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
