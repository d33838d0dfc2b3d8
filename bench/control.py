"""Cost of the safety layer: PID step, guard filter and the full GuardedLoop step.

Prints a table and writes bench/results/control.json. Compares the guarded
step with the bare PID step (overhead ratio) and with the loop period
(fraction of a 100 ms period used), the limit that matters for real time.

Run: PYTHONPATH=$PWD/src /work/main/.venv/bin/python bench/control.py
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from autofab.control import Envelope, GuardedLoop, Observation, PIDController, SafetyGuard

PERIOD_S = 0.1
N_STEPS = 20_000


def _obs(k: int, n: int) -> Observation:
    y = np.full(n, 100.0) + np.sin(0.01 * k + np.arange(n))
    return Observation(t=k * PERIOD_S, y=y, sp=np.full(n, 101.0), age=np.full(n, 0.05))


def _time(fn, obs) -> float:
    for o in obs[:200]:  # warm-up
        fn(o)
    t0 = time.perf_counter()
    for o in obs:
        fn(o)
    return (time.perf_counter() - t0) / len(obs)


def bench(n: int) -> dict[str, float]:
    obs = [_obs(k, n) for k in range(N_STEPS)]
    pid = PIDController(2.0, 30.0, 1.0, dt=PERIOD_S, u_lo=0.0, u_hi=100.0)
    pid.reset()
    bare = _time(pid.step, obs)

    aliases = {"temp": "s/a/l/c/e/temp", "door": "s/a/l/c/e/door"}
    process = {"s/a/l/c/e/temp": 120.0, "s/a/l/c/e/door": 0.0}

    def make_guard() -> SafetyGuard:
        return SafetyGuard(
            Envelope(0.0, 80.0, mv_rate=5.0),
            n_mv=n,
            interlocks=["temp > 250 or door > 0.5", "abs(temp - 120) > 90"],
            aliases=aliases,
        )

    guard = make_guard()
    u = np.full(n, 40.0)
    filt = _time(lambda o: guard.filter(o.t, u, o, process), obs)

    loop = GuardedLoop(
        PIDController(2.0, 30.0, 1.0, dt=PERIOD_S, u_lo=0.0, u_hi=100.0),
        make_guard(),
        step_budget_s=PERIOD_S / 2,
    )
    loop.reset(seed=0)
    full = _time(lambda o: loop.step(o, process), obs)
    return {
        "channels": n,
        "pid_step_us": bare * 1e6,
        "guard_filter_us": filt * 1e6,
        "guarded_loop_step_us": full * 1e6,
        "overhead_ratio": full / bare,
        "period_fraction": full / PERIOD_S,
        "interventions": len(loop.interventions),
    }


def main() -> None:
    rows = [bench(n) for n in (1, 8)]
    head = f"{'ch':>3} {'PID us':>9} {'guard us':>9} {'loop us':>9} {'loop/PID':>9} {'of 100ms':>9}"
    print(head)
    for r in rows:
        print(
            f"{r['channels']:>3} {r['pid_step_us']:>9.1f} {r['guard_filter_us']:>9.1f} "
            f"{r['guarded_loop_step_us']:>9.1f} {r['overhead_ratio']:>9.2f} "
            f"{100 * r['period_fraction']:>8.3f}%",
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "control.json").write_text(
        json.dumps({"python": platform.python_version(), "steps": N_STEPS, "rows": rows}, indent=2),
    )


if __name__ == "__main__":
    main()
