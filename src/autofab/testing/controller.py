"""Contract checks for controllers (see :class:`autofab.control.Controller`).

The checks build a fresh instance with ``plugin_cls.example(workdir)`` each
time. The observation size is taken from the instance's optional ``n_cv``
attribute (default 1); the action size is checked against ``n_mv`` when the
instance has one. A controller may instead provide
``example_observation(t: float) -> Observation`` for plausible values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from autofab.control.base import Action, Controller, Observation
from autofab.errors import NotFittedError

Check = tuple[str, Callable[[], None]]

N_STEPS = 40
HANG_LIMIT_S = 60.0
"""Generous limit for ``N_STEPS`` steps: the check is for hanging, not speed."""


def _make(plugin_cls: Any, workdir: Path) -> Controller:
    ctrl = plugin_cls.example(workdir)
    assert isinstance(ctrl, Controller), f"example() returned {type(ctrl).__name__}, no Controller"
    return ctrl


def _obs(ctrl: Controller, k: int) -> Observation:
    t = float(k)
    make = getattr(ctrl, "example_observation", None)
    if callable(make):
        obs = make(t)
        assert isinstance(obs, Observation), "example_observation must return an Observation"
        return obs
    n = getattr(ctrl, "n_cv", None) or 1
    # a deterministic, gently varying trajectory below the setpoint
    y = np.full(n, 1.0) + 0.5 * np.sin(0.3 * k + np.arange(n))
    return Observation(t=t, y=y, sp=np.full(n, 2.0), age=np.zeros(n))


def _nan_obs(obs: Observation) -> Observation:
    y = np.asarray(obs.y, dtype=np.float64).copy()
    y[0] = np.nan
    return Observation(
        t=obs.t, y=y, sp=obs.sp, u_prev=obs.u_prev, d=obs.d, age=obs.age, sp_preview=obs.sp_preview
    )


def _run(ctrl: Controller, seed: int, steps: int) -> list[np.ndarray]:
    ctrl.reset(seed=seed)
    out = []
    for k in range(steps):
        act = ctrl.step(_obs(ctrl, k))
        out.append(np.asarray(act.u, dtype=np.float64).copy())
        ctrl.track(act.u)
    return out


def checks(plugin_cls: Any, workdir: Path) -> Iterator[Check]:
    """Yield the controller contract checks for ``plugin_cls``."""

    def step_before_reset_raises() -> None:
        ctrl = _make(plugin_cls, workdir)
        try:
            ctrl.step(_obs(ctrl, 0))
        except NotFittedError:
            return
        raise AssertionError("step before reset did not raise NotFittedError")

    def reset_returns_dict() -> None:
        ctrl = _make(plugin_cls, workdir)
        info = ctrl.reset(seed=0)
        assert isinstance(info, dict), f"reset returned {type(info).__name__}, not dict"

    def action_shape() -> None:
        ctrl = _make(plugin_cls, workdir)
        ctrl.reset(seed=0)
        act = ctrl.step(_obs(ctrl, 0))
        assert isinstance(act, Action), f"step returned {type(act).__name__}, not Action"
        u = np.asarray(act.u)
        assert u.ndim == 1 and u.size >= 1, f"action u must be a non-empty 1-D array, got {u.shape}"
        assert np.issubdtype(u.dtype, np.floating), f"action u dtype {u.dtype} is not float"
        assert np.all(np.isfinite(u)), f"action u is not finite: {u}"
        assert isinstance(act.info, dict), "action info must be a dict"
        n_mv = getattr(ctrl, "n_mv", None)
        if n_mv is not None:
            assert u.size == n_mv, f"action has {u.size} values, n_mv is {n_mv}"

    def deterministic_for_seed() -> None:
        a = _run(_make(plugin_cls, workdir), 7, 25)
        b = _run(_make(plugin_cls, workdir), 7, 25)
        ctrl = _make(plugin_cls, workdir)
        _run(ctrl, 3, 10)
        c = _run(ctrl, 7, 25)  # reset must clear every state
        for k, (x, y, z) in enumerate(zip(a, b, c, strict=True)):
            assert np.array_equal(x, y), f"step {k}: same seed, different actions {x} vs {y}"
            assert np.array_equal(x, z), f"step {k}: reset did not clear the state ({x} vs {z})"

    def nan_observation_falls_back() -> None:
        ctrl = _make(plugin_cls, workdir)
        ctrl.reset(seed=0)
        for k in range(5):
            act = ctrl.step(_obs(ctrl, k))
            ctrl.track(act.u)
        try:
            act = ctrl.step(_nan_obs(_obs(ctrl, 5)))
        except Exception as exc:
            raise AssertionError(f"NaN observation raised {type(exc).__name__}: {exc}") from exc
        u = np.asarray(act.u, dtype=np.float64)
        assert u.size >= 1 and np.all(np.isfinite(u)), f"NaN observation gave action {u}"
        assert act.info.get("fallback"), "NaN observation: info['fallback'] must say why"

    def track_accepts_action() -> None:
        ctrl = _make(plugin_cls, workdir)
        ctrl.reset(seed=0)
        act = ctrl.step(_obs(ctrl, 0))
        ctrl.track(np.asarray(act.u, dtype=np.float64))
        act2 = ctrl.step(_obs(ctrl, 1))
        assert np.all(np.isfinite(act2.u)), "action after track is not finite"

    def does_not_hang() -> None:
        ctrl = _make(plugin_cls, workdir)
        err: list[BaseException] = []

        def work() -> None:
            try:
                _run(ctrl, 0, N_STEPS)
            except BaseException as exc:
                err.append(exc)

        th = threading.Thread(target=work, daemon=True)
        th.start()
        th.join(HANG_LIMIT_S)
        assert not th.is_alive(), f"{N_STEPS} steps did not finish within {HANG_LIMIT_S:g} s"
        if err:
            raise AssertionError(f"stepping raised {type(err[0]).__name__}: {err[0]}")

    yield "step_before_reset_raises", step_before_reset_raises
    yield "reset_returns_dict", reset_returns_dict
    yield "action_shape", action_shape
    yield "deterministic_for_seed", deterministic_for_seed
    yield "nan_observation_falls_back", nan_observation_falls_back
    yield "track_accepts_action", track_accepts_action
    yield "does_not_hang", does_not_hang


__all__ = ["checks"]
