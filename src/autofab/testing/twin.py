"""Contract checks for plants (digital twins).

Every registered twin class must pass these: Gymnasium's ``check_env``, spaces
that match the tags, tags with units and valid relative ``cell/equipment/signal``
paths, determinism for a seed, ``dt > 0``, finite observations, and
``apply_fault`` rejecting unsupported kinds with ``ConfigError``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from autofab.core.base import Tag, TagKind, validate_path
from autofab.errors import ConfigError
from autofab.twins.base import SENSOR_FAULTS, Fault

Check = tuple[str, Callable[[], None]]

N_STEPS = 50
"""Steps taken by the rollout checks."""


def _rollout(env: Any, seed: int, n: int = N_STEPS) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    rows = [np.asarray(obs, dtype=np.float64)]
    for _ in range(n):
        obs, *_ = env.step(env.action_space.sample())
        rows.append(np.asarray(obs, dtype=np.float64))
    return np.vstack(rows)


def _check_tags(tags: tuple[Tag, ...], what: str) -> None:
    assert tags, f"{what} is empty"
    paths = [t.path for t in tags]
    assert len(set(paths)) == len(paths), f"{what} has duplicate paths"
    for t in tags:
        assert isinstance(t, Tag), f"{what} holds {t!r}, not a Tag"
        validate_path(t.path)
        assert len(t.path.split("/")) == 3, (
            f"{what} tag {t.path!r} must be relative: exactly cell/equipment/signal"
        )
        assert t.unit, f"{what} tag {t.path!r} has no unit"
        assert t.lo <= t.hi, f"{what} tag {t.path!r} has lo > hi"


def checks(plugin_cls: Any, workdir: Path) -> Iterator[Check]:
    """Yield ``(name, check)`` pairs for the plant class ``plugin_cls``."""

    def make() -> Any:
        return plugin_cls.example(workdir)

    def check_env_passes() -> None:
        from gymnasium.utils.env_checker import check_env

        env = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env, skip_render_check=True)

    def tags_valid() -> None:
        env = make()
        _check_tags(tuple(env.tags_in), "tags_in")
        _check_tags(tuple(env.tags_out), "tags_out")
        overlap = {t.path for t in env.tags_in} & {t.path for t in env.tags_out}
        assert not overlap, f"paths used both as input and output: {sorted(overlap)}"
        for t in env.tags_in:
            assert t.kind == TagKind.MV, f"input tag {t.path} should be an MV, is {t.kind}"
            assert math.isfinite(t.lo) and math.isfinite(t.hi), f"MV {t.path} needs finite limits"

    def spaces_match_tags() -> None:
        env = make()
        for space, tags, what in (
            (env.action_space, env.tags_in, "action"),
            (env.observation_space, env.tags_out, "observation"),
        ):
            assert space.shape == (len(tags),), (
                f"{what} space shape {space.shape} != number of tags {len(tags)}"
            )
            assert space.dtype == np.float64, f"{what} space dtype {space.dtype} != float64"
            for i, t in enumerate(tags):
                if math.isfinite(t.lo):
                    assert space.low[i] == t.lo, f"{what} low[{i}] != {t.path}.lo"
                if math.isfinite(t.hi):
                    assert space.high[i] == t.hi, f"{what} high[{i}] != {t.path}.hi"

    def dt_positive() -> None:
        env = make()
        assert isinstance(env.dt, float | int) and env.dt > 0, f"dt={env.dt!r} must be > 0"
        assert math.isfinite(env.dt), "dt must be finite"

    def deterministic_for_seed() -> None:
        a = _rollout(make(), seed=123)
        b = _rollout(make(), seed=123)
        assert np.array_equal(a, b), "same seed gave different trajectories"
        env = make()
        c1 = _rollout(env, seed=7)
        c2 = _rollout(env, seed=7)
        assert np.array_equal(c1, c2), "reset(seed) on the same instance is not reproducible"

    def observations_finite_and_in_space() -> None:
        env = make()
        rows = _rollout(env, seed=1)
        assert np.all(np.isfinite(rows)), "observation holds NaN or inf"
        box = env.observation_space
        assert np.all(rows >= box.low) and np.all(rows <= box.high), "observation outside space"
        # extreme actions too
        env.reset(seed=2)
        for u in (env.action_space.low, env.action_space.high):
            for _ in range(10):
                obs, *_ = env.step(np.array(u, dtype=np.float64))
                assert np.all(np.isfinite(obs)), "observation not finite at an action bound"

    def unsupported_fault_raises() -> None:
        env = make()
        env.reset(seed=0)
        kind = "no_such_fault_kind"
        assert kind not in env.supported_faults
        try:
            env.apply_fault(Fault(kind=kind, target="x"))
        except ConfigError:
            pass
        else:
            raise AssertionError("apply_fault with an unsupported kind did not raise ConfigError")
        assert not (set(env.supported_faults) & SENSOR_FAULTS), (
            "sensor faults belong to the twin connector, not to supported_faults"
        )

    yield "check_env_passes", check_env_passes
    yield "tags_valid", tags_valid
    yield "spaces_match_tags", spaces_match_tags
    yield "dt_positive", dt_positive
    yield "deterministic_for_seed", deterministic_for_seed
    yield "observations_finite_and_in_space", observations_finite_and_in_space
    yield "unsupported_fault_raises", unsupported_fault_raises


__all__ = ["checks"]
