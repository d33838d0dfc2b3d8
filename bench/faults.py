"""Fault-injection campaign: random faults on every twin, under PID and the autopilot.

Every built-in site with control loops is built through the runtime's normal
path (twin connector, bus, loops with the real controller behind the real
SafetyGuard) and warmed up fault-free once per controller: the commissioned
PID loops, and the same loops on ``controller: autopilot`` (commissioned,
identified and validated online during the warm-up). Each episode then runs
on a copy of that warmed-up state with one to three random faults
(:mod:`autofab.testing.faults`) and counts hard-limit violations of the TRUE
process values and of the written MVs, the time from the first fault's onset
to the loop leaving normal control (guard hold/fallback, autopilot fallback),
the time to recovery (back inside the loop's normal band for 30 s after the
faults end), off-spec parts, and the trips (second final elements: the CSTR's
emergency shutdown, the welding cell's seam abort) with the parts made, so
the production a trip costs shows.

Run: ``PYTHONPATH=$PWD/src python bench/faults.py [--episodes 10000] [--seed 0]
[--jobs 2] [--seconds 300] [--sites cstr,welding_cell,...]``.
Prints a table and writes ``bench/results/faults.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from autofab.site import load_site
from autofab.sites import site_path
from autofab.testing.faults import FAULT_KINDS, EpisodeResult, FaultHarness, random_faults

sys.path.insert(0, str(Path(__file__).parent))
from learn_control import TWIN_AP_SETTINGS, _autopilot_site

RESULTS = Path(__file__).parent / "results"
#: sites with control loops, and their share of the episodes (fewer on the
#: sites with many loops, whose episodes cost more)
SITE_WEIGHTS = {
    "cstr": 3.0,
    "welding_cell": 3.0,
    "cure_line": 1.5,
    "ois_line": 1.5,
    "calcination_kiln": 1.0,
}
CONTROLLERS = ("pid", "autopilot")
WARM_S = 600.0
AUTOPILOT_MAX_WARM_S = 4 * 3600.0

_HARNESS: dict[tuple[str, str], FaultHarness] = {}


def _ap_settings(site_name: str, plant: str) -> dict[str, Any]:
    return dict(TWIN_AP_SETTINGS.get(plant, {}))


def build(site_name: str, controller: str, seed: int) -> tuple[FaultHarness, dict[str, Any]]:
    """Warmed-up harness of ``site_name`` under ``controller``."""
    site = load_site(site_path(site_name))
    plant = str(site.connectors[0].options.get("plant", ""))
    if controller == "autopilot":
        registry = tempfile.mkdtemp(prefix=f"faults-{site_name}-")
        site = _autopilot_site(site, _ap_settings(site_name, plant), seed, registry)
    t0 = time.perf_counter()
    h = FaultHarness(site, seed=seed, source=site_name)
    h.warm_up(WARM_S, until_autonomous=AUTOPILOT_MAX_WARM_S if controller == "autopilot" else 0)
    info = {
        "warm_s_sim": h.t,
        "warm_s_wall": time.perf_counter() - t0,
        "phases": h.phases(),
        "band": {k: v.tolist() for k, v in h.band.items()},
        "loops": len(h.loops),
    }
    return h, info


def _task(args: tuple[str, str, int, int, float, bool]) -> dict[str, Any]:
    site_name, controller, seed, idx, seconds, clean = args
    h = _HARNESS[(site_name, controller)]
    rng = np.random.default_rng([seed, idx + 1_000_000, CONTROLLERS.index(controller)])
    faults = [] if clean else random_faults(rng, h, seconds)
    res: EpisodeResult = h.episode(faults, seconds, noise_seed=int(rng.integers(2**31)))
    out = res.to_dict()
    out.update(site=site_name, controller=controller, idx=idx, clean=clean)
    return out


def _median(v: list[float]) -> float | None:
    return float(np.median(v)) if v else None


def at_onset(row: dict[str, Any]) -> bool:
    """True when every violating loop of ``row`` broke its limits at a fault's onset.

    At onset: within two loop periods of the onset, before any measurement could
    show the fault, so no control or protective action could have prevented it.
    """
    bad = [lp for lp in row["loops"].values() if lp["cv_violations"] + lp["mv_violations"]]
    return bool(bad) and all(
        lp["onset_to_violation_s"] is not None
        and lp["onset_to_violation_s"] <= 2 * lp["period_s"] + 1e-9
        for lp in bad
    )


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures per site and controller, and per fault kind."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r["site"], r["controller"])].append(r)
    out: dict[str, Any] = {}
    for (site, ctrl), rs in sorted(cells.items()):
        faulty = [r for r in rs if not r["clean"]]
        clean = [r for r in rs if r["clean"]]
        per_kind: dict[str, dict[str, Any]] = {}
        for kind in FAULT_KINDS:
            ks = [r for r in faulty if any(f["kind"] == kind for f in r["faults"])]
            if not ks:
                continue
            fb, rec, n_rec, n_det = [], [], 0, 0
            for r in ks:
                hit = {f["loop"] for f in r["faults"] if f["kind"] == kind}
                names = list(r["loops"]) if "" in hit else sorted(hit)
                det = [r["loops"][n]["fallback_s"] for n in names]
                det = [d for d in det if d is not None]
                if det:
                    n_det += 1
                    fb.append(min(det))
                recs = [r["loops"][n] for n in names]
                if all(x["recovered"] for x in recs):
                    n_rec += 1
                    rec.append(max(x["recovery_s"] for x in recs))
            per_kind[kind] = {
                "episodes": len(ks),
                "violating_episodes": sum(1 for r in ks if r["hard_violations"]),
                "detected": n_det / len(ks),
                "fallback_s_median": _median(fb),
                "recovered": n_rec / len(ks),
                "recovery_s_median": _median(rec),
                "off_spec_mean": float(np.mean([r["off_spec"] for r in ks])),
                "trip_episodes": sum(1 for r in ks if r.get("trips")),
            }
        out[f"{site}/{ctrl}"] = {
            "site": site,
            "controller": ctrl,
            "episodes": len(faulty),
            "hard_violation_steps": int(sum(r["hard_violations"] for r in faulty)),
            "violating_episodes": sum(1 for r in faulty if r["hard_violations"]),
            "violating_at_onset": sum(1 for r in faulty if r["hard_violations"] and at_onset(r)),
            "clean_violation_steps": int(sum(r["hard_violations"] for r in clean)),
            "off_spec_mean": float(np.mean([r["off_spec"] for r in faulty])) if faulty else None,
            "off_spec_clean_mean": float(np.mean([r["off_spec"] for r in clean]))
            if clean
            else None,
            "parts_mean": float(np.mean([r["parts"] for r in faulty])) if faulty else None,
            "parts_clean_mean": float(np.mean([r["parts"] for r in clean])) if clean else None,
            "parts_trip_mean": float(np.mean([r["parts"] for r in faulty if r.get("trips")]))
            if any(r.get("trips") for r in faulty)
            else None,
            "trip_episodes": sum(1 for r in faulty if r.get("trips")),
            "clean_trip_episodes": sum(1 for r in clean if r.get("trips")),
            "episode_wall_s_mean": float(np.mean([r["wall_s"] for r in rs])),
            "kinds": per_kind,
        }
    return out


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_summary(summary: dict[str, Any]) -> None:
    """Table per site/controller and per fault kind, and autopilot/PID ratios."""
    print(
        f"\n{'site/controller':30} {'episodes':>8} {'viol.ep':>7} {'viol.steps':>10} "
        f"{'onset':>5} {'offspec':>8} {'clean':>8} {'trips':>5} {'wall s':>7}"
    )
    for key, c in summary.items():
        print(
            f"{key:30} {c['episodes']:8d} {c['violating_episodes']:7d} "
            f"{c['hard_violation_steps']:10d} {c['violating_at_onset']:5d} "
            f"{_fmt(c['off_spec_mean']):>8} "
            f"{_fmt(c['off_spec_clean_mean']):>8} {c['trip_episodes']:5d} "
            f"{c['episode_wall_s_mean']:7.2f}"
        )
    print(
        f"\n{'site/controller':30} {'fault':18} {'n':>5} {'viol':>5} {'detect':>7} "
        f"{'fb s':>6} {'recov':>6} {'rec s':>7} {'offspec':>8} {'trips':>5}"
    )
    for key, c in summary.items():
        for kind, k in c["kinds"].items():
            print(
                f"{key:30} {kind:18} {k['episodes']:5d} {k['violating_episodes']:5d} "
                f"{k['detected']:7.2f} {_fmt(k['fallback_s_median']):>6} "
                f"{k['recovered']:6.2f} {_fmt(k['recovery_s_median']):>7} "
                f"{_fmt(k['off_spec_mean']):>8} {k['trip_episodes']:5d}"
            )
    print("\nautopilot / PID (per site)")
    for site in sorted({c["site"] for c in summary.values()}):
        a, p = summary.get(f"{site}/autopilot"), summary.get(f"{site}/pid")
        if not a or not p:
            continue
        ratio = (
            a["off_spec_mean"] / p["off_spec_mean"]
            if a["off_spec_mean"] is not None and p["off_spec_mean"]
            else None
        )
        print(
            f"{site:20} off-spec per episode {_fmt(a['off_spec_mean'])} vs "
            f"{_fmt(p['off_spec_mean'])} (ratio {_fmt(ratio)}); violating episodes "
            f"{a['violating_episodes']} vs {p['violating_episodes']}"
        )


def main() -> None:
    """Run the campaign and write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--episodes", type=int, default=10_000, help="fault episodes in all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seconds", type=float, default=300.0, help="simulated s per episode")
    ap.add_argument("--clean", type=int, default=10, help="fault-free episodes per cell")
    ap.add_argument("--sites", default=",".join(SITE_WEIGHTS))
    ap.add_argument("--controllers", default=",".join(CONTROLLERS))
    ap.add_argument("--out", default=str(RESULTS / "faults.json"))
    args = ap.parse_args()
    sites = [s for s in args.sites.split(",") if s]
    ctrls = [c for c in args.controllers.split(",") if c]
    t0 = time.perf_counter()
    warm: dict[str, Any] = {}
    for s in sites:
        for c in ctrls:
            h, info = build(s, c, args.seed)
            _HARNESS[(s, c)] = h
            warm[f"{s}/{c}"] = info
            print(
                f"warm-up {s}/{c}: {info['warm_s_sim']:.0f} s simulated in "
                f"{info['warm_s_wall']:.1f} s; phases {sorted(set(info['phases'].values()))}",
                flush=True,
            )
    t_warm = time.perf_counter() - t0
    total_w = sum(SITE_WEIGHTS.get(s, 1.0) for s in sites) * len(ctrls)
    tasks: list[tuple[str, str, int, int, float, bool]] = []
    for s in sites:
        n = max(1, round(args.episodes * SITE_WEIGHTS.get(s, 1.0) / total_w))
        for c in ctrls:
            tasks += [(s, c, args.seed, i, args.seconds, False) for i in range(n)]
            tasks += [(s, c, args.seed, -1 - i, args.seconds, True) for i in range(args.clean)]
    # costly cells first, interleaved, so the workers finish together
    tasks.sort(key=lambda t: (t[3] % 97, t[0]))
    rows: list[dict[str, Any]] = []
    t1 = time.perf_counter()
    ctx = mp.get_context("fork")
    with ctx.Pool(args.jobs) as pool:
        for i, r in enumerate(pool.imap_unordered(_task, tasks, chunksize=4)):
            rows.append(r)
            if (i + 1) % 100 == 0:
                el = time.perf_counter() - t1
                print(f"  {i + 1}/{len(tasks)} episodes, {el:.0f} s", flush=True)
    t_run = time.perf_counter() - t1
    summary = summarise(rows)
    print_summary(summary)
    n_faulty = sum(1 for r in rows if not r["clean"])
    viol = [r for r in rows if r["hard_violations"]]
    print(
        f"\n{n_faulty} fault episodes (+{len(rows) - n_faulty} fault-free), "
        f"{len(viol)} with hard-limit violations ({sum(map(at_onset, viol))} of them within two "
        f"loop periods of a fault's onset); warm-up {t_warm:.0f} s, "
        f"episodes {t_run:.0f} s wall on {args.jobs} jobs"
    )
    result = {
        "command": " ".join(["python", "bench/faults.py", *sys.argv[1:]]),
        "episodes": n_faulty,
        "clean_episodes": len(rows) - n_faulty,
        "seconds_per_episode": args.seconds,
        "seed": args.seed,
        "jobs": args.jobs,
        "wall_s": {"warm_up": t_warm, "episodes": t_run},
        "load": os.getloadavg(),
        "warm_up": warm,
        "summary": summary,
        "violating_at_onset": sum(map(at_onset, viol)),
        "violating_episodes": viol[:500],
        "target_zero_violations": not viol,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
