"""Speed of the built-in plants: steps per wall second and simulated seconds per wall second.

Each plant is reset and stepped with its commissioned (nominal) action; the
figures are compared with the targets in the same run: continuous plants at
least 10,000 steps/s, every plant far faster than real time (ratio printed),
and with a same-run peer, Gymnasium's Pendulum-v1, whose ratio does not depend
on how loaded the machine is.

Run: ``PYTHONPATH=src python bench/twins.py [--steps N]``; writes
``bench/results/twins.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autofab.core import registry

CONTINUOUS_TARGET = 10_000.0  # steps/s

# plant -> (params, nominal action from the reset instance, continuous?)
PLANTS: dict[str, tuple[dict[str, Any], Callable[[Any], np.ndarray], bool]] = {
    "cure_oven": ({}, lambda e: np.asarray(e._power, dtype=float), True),
    "cstr": ({}, lambda e: np.array([300.0]), True),
    "calcination_kiln": ({}, lambda e: np.r_[e.power, 80.0], True),
    "welding_cell": ({}, lambda e: np.array([7.0, 24.0, 8.0]), False),
    "ois_line": ({}, lambda e: np.array([220.0, 4.0, 3.8, 3.3, 3.9]), False),
}


def bench_plant(name: str, steps: int, repeats: int) -> dict[str, Any]:
    params, action_of, continuous = PLANTS[name]
    env = registry.load("twin", name)(**params)
    t0 = time.perf_counter()
    env.reset(seed=0)
    reset_s = time.perf_counter() - t0
    u = action_of(env)
    for _ in range(min(steps // 10, 2000)):  # warm-up
        env.step(u)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(u)
        best = min(best, time.perf_counter() - t0)
    sps = steps / best
    row = {
        "plant": name,
        "dt_s": env.dt,
        "steps": steps,
        "steps_per_s": sps,
        "sim_s_per_wall_s": sps * env.dt,
        "reset_s": reset_s,
        "continuous": continuous,
        "target_steps_per_s": CONTINUOUS_TARGET if continuous else None,
        "ratio_to_target": sps / CONTINUOUS_TARGET if continuous else None,
        "ratio_to_real_time": sps * env.dt,
    }
    return row


def bench_peer(steps: int, repeats: int) -> float:
    """Steps/s of Gymnasium's Pendulum-v1 (a 2-state pure-Python ODE), the same-run peer."""
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    env = PendulumEnv()
    env.reset(seed=0)
    u = np.array([0.5], dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(u)
        best = min(best, time.perf_counter() - t0)
    return steps / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--plants", nargs="*", default=list(PLANTS))
    args = ap.parse_args()
    peer = bench_peer(args.steps, args.repeats)
    rows = [bench_plant(p, args.steps, args.repeats) for p in args.plants]
    for r in rows:
        r["ratio_to_pendulum"] = r["steps_per_s"] / peer
    print(f"peer gymnasium Pendulum-v1: {peer:.0f} steps/s")
    print(
        f"{'plant':18s} {'dt s':>5s} {'steps/s':>10s} {'sim s/wall s':>13s} "
        f"{'vs 10k target':>13s} {'vs Pendulum':>11s} {'reset s':>8s}"
    )
    for r in rows:
        ratio = f"{r['ratio_to_target']:.2f}x" if r["continuous"] else "n/a (DES)"
        print(
            f"{r['plant']:18s} {r['dt_s']:5.1f} {r['steps_per_s']:10.0f} "
            f"{r['sim_s_per_wall_s']:13.0f} {ratio:>13s} {r['ratio_to_pendulum']:10.2f}x "
            f"{r['reset_s']:8.3f}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "steps": args.steps,
        "repeats": args.repeats,
        "peer_pendulum_steps_per_s": peer,
    }
    (out / "twins.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out / 'twins.json'}")


if __name__ == "__main__":
    main()
