"""Transport inside the OIS line twin: how the fleet's size and policy reach the line's output.

Runs the ``ois_line`` twin (random breakdowns off, constant MVs) with the default site's
``transport:`` section, for fleets of 1, 2 and 5 robots, planned and baseline, with the
site's lots and with lots (and buffers) cut to a quarter (four times the transport
requests). Prints good parts per hour of the line, assembly parts, starvation and blocking
minutes per served station and the transport lead time; writes
``bench/results/transport_line.json``.

Usage: ``PYTHONPATH=$PWD/src python bench/transport_line.py [--hours 1] [--fleets 1,2,5]``
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autofab.sites import site_path
from autofab.twins.ois_line import OisLine


def _section(robots: int, mode: str, lot_share: float) -> dict[str, Any]:
    site = yaml.safe_load(site_path("ois_line").read_text(encoding="utf-8"))
    tr: dict[str, Any] = copy.deepcopy(site["transport"])
    tr["robots"]["count"] = robots
    tr["mode"] = mode
    tr["floor"]["n_parking"] = max(tr["floor"]["n_parking"], robots)
    for st in tr["stations"].values():
        for buf in st.values():
            for key in ("lot", "capacity", "reorder"):
                if key in buf:
                    buf[key] = buf[key] * lot_share
    return tr


def run_one(robots: int, mode: str, lot_share: float, hours: float) -> dict[str, Any]:
    """One twin run; returns line output and the transport block."""
    params = yaml.safe_load(site_path("ois_line").read_text(encoding="utf-8"))["connectors"][0][
        "options"
    ]["params"]
    params = {**params, "random_breakdowns": False}
    plant = OisLine(**params, transport=_section(robots, mode, lot_share))
    plant.reset(seed=0)
    u = np.array([220.0, 4.0, 3.8, 3.3, 3.9])
    t0 = time.perf_counter()
    for _ in range(int(hours * 3600 / plant.dt)):
        plant.step(u)
    wall = time.perf_counter() - t0
    tr = plant.transport_report()
    assert tr is not None
    return {
        "robots": robots,
        "mode": mode,
        "lot_share": lot_share,
        "good_per_h": plant._st["test"].good / hours,
        "assembly_parts": plant._st["assembly"].total,
        "starvation_min": tr["starvation_min"],
        "blocked_min": tr["blocked_min"],
        "delivered": tr["delivered"],
        "requests": tr["requests"],
        "lead_mean_s": tr["lead_time_mean_s"],
        "lead_p95_s": tr["lead_time_p95_s"],
        "utilisation": tr["utilisation"],
        "wall_s": wall,
    }


def main() -> None:
    """Run the grid and print it."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--fleets", default="1,2,5")
    a = ap.parse_args()
    rows = []
    print(
        f"{'lots':>5} {'n':>2} {'mode':8} {'good/h':>7} {'asm':>5} {'done/req':>9} "
        f"{'lead':>6} {'p95':>6} {'util':>5} {'starved min':>24} {'blocked min':>12} {'wall':>5}"
    )
    for share in (1.0, 0.25):
        for n in (int(x) for x in a.fleets.split(",")):
            for mode in ("planned", "baseline"):
                r = run_one(n, mode, share, a.hours)
                rows.append(r)
                starved = " ".join(f"{k[:4]} {v:.1f}" for k, v in r["starvation_min"].items())
                blocked = " ".join(f"{k[:4]} {v:.1f}" for k, v in r["blocked_min"].items() if v)
                print(
                    f"{share:>5.2f} {n:>2} {mode:8} {r['good_per_h']:>7.0f} "
                    f"{r['assembly_parts']:>5} {r['delivered']:>4}/{r['requests']:<4} "
                    f"{r['lead_mean_s'] or 0:>6.0f} {r['lead_p95_s'] or 0:>6.0f} "
                    f"{r['utilisation']:>5.2f} {starved:>24} {blocked or '-':>12} "
                    f"{r['wall_s']:>5.1f}",
                    flush=True,
                )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "transport_line.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
