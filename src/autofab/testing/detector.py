"""Contract checks for detectors (kind ``detector``).

Each check builds the plugin with ``example(workdir)``, fits it on synthetic
normal data (correlated signals with autocorrelation, like a process) and
checks: ``NotFittedError`` before fit, flags of the right shape and values,
a false-alarm rate on held-out normal data near ``alpha``, detection of a
large step, contributions that point at the faulty signal, determinism.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from autofab.errors import NotFittedError

Check = tuple[str, Callable[[], None]]


def normal_data(n: int, seed: int, p: int = 6) -> np.ndarray:
    """Synthetic normal operation: AR(1) latent factors mixed into ``p`` noisy signals."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1234).normal(size=(2, p))
    f = np.zeros((n, 2))
    e = rng.normal(size=(n, 2))
    for t in range(1, n):
        f[t] = 0.8 * f[t - 1] + e[t]
    return f @ mix + 0.3 * rng.normal(size=(n, p))


def checks(plugin_cls: Any, workdir: Path) -> Iterator[Check]:
    """Yield the detector contract checks for ``plugin_cls``."""

    def fitted() -> Any:
        return plugin_cls.example(workdir).fit(normal_data(1500, 0))

    def not_fitted() -> None:
        det = plugin_cls.example(workdir)
        try:
            det.predict(normal_data(20, 1))
        except NotFittedError:
            return
        raise AssertionError("predict before fit must raise NotFittedError")

    def flags_shape() -> None:
        det = fitted()
        X = normal_data(200, 2)
        f = np.asarray(det.predict(X))
        assert f.shape == (200,), f"flags shape {f.shape}, expected (200,)"
        assert set(np.unique(f)) <= {0, 1}, f"flags must be 0/1, got {np.unique(f)}"
        s = np.asarray(det.score_samples(X))
        assert s.shape == (200,) and np.all(np.isfinite(s)), (
            "score_samples must give one finite score per row"
        )

    def false_alarm_rate() -> None:
        det = fitted()
        rates = [float(np.mean(det.predict(normal_data(2000, seed)))) for seed in (3, 4)]
        far = float(np.mean(rates))
        alpha = float(det.alpha)
        assert far <= 3 * alpha + 0.02, (
            f"false-alarm rate {far:.3f} on held-out normal data, alpha {alpha}"
        )

    def detects_step() -> None:
        det = fitted()
        X = normal_data(400, 5)
        X[200:, 2] += 8.0
        dr = float(np.mean(det.predict(X)[220:]))
        assert dr > 0.9, f"detection rate of an 8-unit step on signal 2 is {dr:.2f}, expected > 0.9"

    def contributions() -> None:
        det = fitted()
        X = normal_data(300, 6)
        X[150:, 4] += 8.0
        C = np.asarray(det.contributions(X))
        assert C.shape == X.shape, f"contributions shape {C.shape}, expected {X.shape}"
        assert np.all(C >= 0) and np.allclose(C.sum(axis=1), 1.0), (
            "rows must be shares summing to 1"
        )
        top = np.bincount(C[170:].argmax(axis=1), minlength=X.shape[1]).argmax()
        assert top == 4, f"signal 4 carries the fault, contributions rank signal {top} first"

    def deterministic() -> None:
        X = normal_data(300, 7)
        a = fitted().score_samples(X)
        b = fitted().score_samples(X)
        assert np.allclose(a, b), "two fits on the same data must give the same scores"

    yield "not_fitted", not_fitted
    yield "flags_shape", flags_shape
    yield "false_alarm_rate", false_alarm_rate
    yield "detects_step", detects_step
    yield "contributions", contributions
    yield "deterministic", deterministic
