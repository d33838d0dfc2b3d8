"""Automatic identification: try model structures, keep the best on held-out data.

Candidates: ARX (orders by :func:`~autofab.learn.arx.select_arx`), N4SID
(order by :func:`~autofab.learn.subspace.select_n4sid`, on the longest
contiguous segment) and, when the best linear fit is below ``nonlinear_below``,
a polynomial NARX whose held-out fit must beat the linear one by
``nonlinear_gain`` to be chosen. The chosen structure is refitted on all data
and validated (multi-step fit, residual whiteness) on the held-out window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autofab.errors import ConfigError
from autofab.learn.arx import holdout_start, select_arx
from autofab.learn.base import DynamicModel, FloatArray, Validation, as_2d
from autofab.learn.narx import NARX
from autofab.learn.subspace import select_n4sid
from autofab.learn.validate import holdout_score, validate


@dataclass
class Identified:
    """Outcome of :func:`identify`.

    Parameters
    ----------
    model : DynamicModel
        Chosen model, refitted on all data.
    validation : Validation
        Figures on the held-out window (of the model fitted without it).
    kind : str
        ``"ARX"``, ``"N4SID"`` or ``"NARX"``.
    scores : dict
        Held-out fit of every structure tried.
    """

    model: DynamicModel
    validation: Validation
    kind: str
    scores: dict[str, float] = field(default_factory=dict)
    linear: DynamicModel | None = None
    data: tuple[FloatArray, FloatArray] | None = None

    @property
    def nonlinear(self) -> bool:
        """Whether a nonlinear model was chosen."""
        return self.kind == "NARX"


def _longest_segment(n: int, breaks: Any) -> tuple[int, int]:
    edges = [0, *sorted(int(b) for b in breaks or ()), n]
    spans = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    return max(spans, key=lambda s: s[1] - s[0])


def identify(
    u: Any,
    y: Any,
    *,
    breaks: Any = (),
    holdout: float = 0.3,
    threshold: float = 0.7,
    nonlinear: bool = True,
    nonlinear_below: float = 0.95,
    nonlinear_gain: float = 0.03,
) -> Identified:
    """Identify a model of ``y`` from ``u`` (time-major arrays).

    Parameters
    ----------
    breaks : sequence of int
        Indices where a new contiguous segment starts.
    holdout : float
        Fraction of the data (at the end) kept for validation.
    threshold : float
        Minimum held-out fit for the validation to pass.
    nonlinear : bool
        Whether NARX may be tried.
    """
    u2, y2 = as_2d(u, "u"), as_2d(y, "y")
    n = u2.shape[0]
    scores: dict[str, float] = {}
    arx, s_arx, _ = select_arx(u2, y2, holdout=holdout, breaks=breaks)
    scores["ARX"] = s_arx
    best: tuple[float, str, DynamicModel] = (s_arx, "ARX", arx)
    lo, hi = _longest_segment(n, breaks)
    if hi - lo >= 200:
        try:
            ss, s_ss, _ = select_n4sid(u2[lo:hi], y2[lo:hi], holdout=holdout, orders=(1, 2, 3, 4))
            scores["N4SID"] = s_ss
            if s_ss > best[0] + 0.01:
                best = (s_ss, "N4SID", ss)
        except (ConfigError, np.linalg.LinAlgError):
            pass
    linear = best[2]
    start = holdout_start(n, holdout, breaks)
    if nonlinear and best[0] < nonlinear_below:
        fit_breaks = [b for b in breaks or () if b < start]
        na = getattr(arx, "na", 2)
        nb = getattr(arx, "nb", 2)
        nk = getattr(arx, "nk", 1)
        try:
            nl = NARX(na, nb, nk).fit(u2[:start], y2[:start], breaks=fit_breaks)
            s_nl = holdout_score(nl, u2, y2, start, breaks)
            scores["NARX"] = s_nl
            if s_nl > best[0] + nonlinear_gain:
                best = (s_nl, "NARX", NARX(na, nb, nk).fit(u2, y2, breaks=breaks))
        except (ConfigError, np.linalg.LinAlgError):
            pass
    kind, model = best[1], best[2]
    # validation figures: model of the same structure fitted without the held-out window
    held = _refit_without(model, u2, y2, start, breaks, (lo, hi), kind)
    rel = [b - (start - 10) for b in breaks or () if b > start]
    val = validate(
        held, u2[start - 10 :], y2[start - 10 :], warmup=10, threshold=threshold, breaks=rel
    )
    return Identified(
        model=model, validation=val, kind=kind, scores=scores, linear=linear, data=(u2, y2)
    )


def _refit_without(
    model: DynamicModel,
    u: FloatArray,
    y: FloatArray,
    start: int,
    breaks: Any,
    seg: tuple[int, int],
    kind: str,
) -> DynamicModel:
    fit_breaks = [b for b in breaks or () if b < start]
    params = model.get_params()
    clone = type(model)(**params)
    if kind == "N4SID":
        lo = seg[0] if seg[0] < start else 0
        return clone.fit(u[lo:start], y[lo:start])
    fitted: DynamicModel = clone.fit(u[:start], y[:start], breaks=fit_breaks)  # type: ignore[call-arg]
    return fitted


def steady_state(model: DynamicModel, u: FloatArray, n: int = 400) -> FloatArray:
    """Output the model settles to for a constant input ``u`` (CV units)."""
    y = model.simulate(np.tile(np.asarray(u, dtype=np.float64), (n, 1)), None)
    return np.asarray(y[-1])
