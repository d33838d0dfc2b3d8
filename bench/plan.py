"""Scheduling benchmark: gap to the best-known makespan, plain CP-SAT vs CP-SAT + LNS.

Runs each instance with both schedulers at the same time limit and workers, in
the same process one after the other, and reports the gap of each to the
best-known upper bound of ``bks.json`` and their ratio. A second part plays
breakdown scenarios with the rescheduling agent and with FIFO dispatching.

Usage::

    PYTHONPATH=src python bench/plan.py --time-limit 60 --workers 2 \
        --taillard ta01,ta02 --brandimarte mk01,mk02
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from autofab.core import registry
from autofab.plan import AgentSettings, Event, read_problem, simulate_dispatch, validate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scheduling"
RESULTS = ROOT / "bench" / "results"


def _bks(path: Path) -> dict[str, int]:
    return {x["instance"]: int(x["upper_bound"]) for x in json.loads(path.read_text())}


def _instances(args: argparse.Namespace) -> list[tuple[str, str, Path, int]]:
    js, fj = _bks(DATA / "jobshop" / "bks.json"), _bks(DATA / "fjsp" / "bks.json")
    out = []
    for name in filter(None, args.taillard.split(",")):
        out.append(
            (
                "taillard",
                name,
                DATA / "jobshop/instances/Taillard1993" / f"{name}js.txt",
                js[f"{name}js"],
            )
        )
    for name in filter(None, args.brandimarte.split(",")):
        out.append(
            ("brandimarte", name, DATA / "fjsp/instances/Brandimarte1993" / f"{name}.txt", fj[name])
        )
    return out


def run_gaps(args: argparse.Namespace, report: dict) -> None:
    solvers = args.solvers.split(",")
    rows = report.setdefault("instances", {})
    head = (
        f"{'instance':10} {'bks':>6} "
        + " ".join(f"{s + ' ms':>14} {'gap%':>6}" for s in solvers)
        + "  ratio"
    )
    print(head)
    for family, name, path, bks in _instances(args):
        if name in rows and all(s in rows[name]["solvers"] for s in solvers):
            r = rows[name]
        else:
            prob = read_problem(path)
            r = {"family": family, "bks": bks, "solvers": {}}
            for s in solvers:
                c0 = time.process_time()
                sched = registry.load("scheduler", s)().solve(
                    prob, time_limit=args.time_limit, workers=args.workers, seed=args.seed
                )
                cpu = time.process_time() - c0
                assert validate(prob, sched) == [], f"{name}: {s} returned an invalid schedule"
                r["solvers"][s] = {
                    "makespan": sched.makespan,
                    "lower_bound": sched.lower_bound,
                    "status": sched.status,
                    "wall_s": round(sched.wall_s, 2),
                    "cpu_s": round(cpu, 2),
                    "load_1min": os.getloadavg()[0],
                    "gap_to_bks": (sched.makespan - bks) / bks,
                    "stats": sched.stats,
                }
            rows[name] = r
            _save(args, report)
        cells = " ".join(
            f"{r['solvers'][s]['makespan']:>14} {100 * r['solvers'][s]['gap_to_bks']:>6.2f}"
            for s in solvers
        )
        g = [r["solvers"][s]["gap_to_bks"] for s in solvers]
        ratio = f"{(g[1] / g[0]):.2f}" if len(g) > 1 and g[0] > 0 else "-"
        print(f"{name:10} {bks:>6} {cells}  {ratio}", flush=True)
    summary = {}
    for family in ("taillard", "brandimarte"):
        names = [n for n, r in rows.items() if r["family"] == family]
        if not names:
            continue
        summary[family] = {
            "instances": names,
            **{
                s: {
                    "mean_gap_pct": 100
                    * statistics.fmean(rows[n]["solvers"][s]["gap_to_bks"] for n in names),
                    "wins": sum(
                        rows[n]["solvers"][s]["makespan"]
                        < min(
                            (rows[n]["solvers"][o]["makespan"] for o in solvers if o != s),
                            default=float("inf"),
                        )
                        for n in names
                    ),
                }
                for s in solvers
            },
        }
        line = ", ".join(f"{s} {summary[family][s]['mean_gap_pct']:.2f} %" for s in solvers)
        print(f"mean gap to best-known, {family} ({len(names)} instances): {line}")
    report["summary"] = summary


def run_live(args: argparse.Namespace, report: dict) -> None:
    """Breakdown scenarios on Brandimarte instances: agent vs FIFO dispatching."""
    out = []
    settings = AgentSettings(
        budget_s=5.0, initial_time_limit_s=args.live_initial, workers=args.workers
    )
    print(
        f"\n{'scenario':22} {'policy':6} {'makespan':>8} {'idle':>7} {'tardy':>7} "
        f"{'max replan s':>12}"
    )
    for name in ("mk01", "mk03", "mk05"):
        prob = read_problem(DATA / "fjsp/instances/Brandimarte1993" / f"{name}.txt")
        # Due dates at 1.1 x the FIFO makespan's share of each job's work, weight 1.
        fifo0 = simulate_dispatch(prob, [], policy="fifo")
        due = int(0.8 * fifo0.makespan)
        prob = prob.model_copy(
            update={"jobs": tuple(j.model_copy(update={"due": due}) for j in prob.jobs)}
        )
        t = fifo0.makespan // 4
        events = [
            Event(kind="breakdown", t=t, machine=0, duration_s=fifo0.makespan // 5),
            Event(kind="breakdown", t=2 * t, machine=1, duration_s=fifo0.makespan // 6),
        ]
        for policy in ("fifo", "plan"):
            t0 = time.perf_counter()
            r = simulate_dispatch(prob, events, policy=policy, settings=settings)  # type: ignore[arg-type]
            row = {
                "scenario": f"{name}-2breakdowns",
                "policy": policy,
                **r.summary(),
                "wall_s": time.perf_counter() - t0,
            }
            out.append(row)
            print(
                f"{row['scenario']:22} {policy:6} {r.makespan:>8} {r.idle_total:>7} "
                f"{r.tardiness:>7.0f} {row['max_replan_wall_s']:>12.2f}",
                flush=True,
            )
    report["live"] = out


def _save(args: argparse.Namespace, report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--taillard", default="ta01,ta02,ta03,ta04,ta05,ta06,ta07,ta08,ta09,ta10,ta21,ta31,ta41"
    )
    ap.add_argument("--brandimarte", default="mk01,mk02,mk03,mk04,mk05,mk06,mk07,mk08,mk09,mk10")
    ap.add_argument("--solvers", default="cpsat,cpsat_lns")
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--live-initial", type=float, default=10.0)
    ap.add_argument("--out", default=str(RESULTS / "plan.json"))
    ap.add_argument("--resume", action="store_true", help="keep instances already in --out")
    args = ap.parse_args()
    report: dict = {}
    if args.resume and Path(args.out).exists():
        report = json.loads(Path(args.out).read_text())
    report["settings"] = {
        "time_limit_s": args.time_limit,
        "workers": args.workers,
        "seed": args.seed,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    run_gaps(args, report)
    _save(args, report)
    if not args.no_live:
        run_live(args, report)
        _save(args, report)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
