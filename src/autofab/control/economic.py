r"""Economic setpoint layer: the zone setpoints that make good product for least energy.

Above the zone loops (the autopilot's MPCs) this layer learns, from the tags
the plant exposes and nothing else, two steady-state models:

* **quality**: the measured exit quality (e.g. the cure degree of the part
  leaving an oven) against the zone temperatures along the part's path. The
  features follow cure kinetics: for a part that left at ``t`` and spent
  ``residence_s / n`` in each zone, ``x_i`` is the mean over its stay in zone
  ``i`` of ``exp(-E/R (1/T_p - 1/T_ref))``, ``T_p`` the part temperature (a
  first-order lag ``tau`` of the recorded zone air temperatures along its
  path, from ``t_entry_degc``); the cure "dose" ``z = g(q)``
  (``-ln(1 - q)``, first order, or ``2((1 - q)^-1/2 - 1)``, order 1.5) is
  fitted as ``z = c + sum_i w_i x_i`` with ``w_i >= 0`` (non-negative least
  squares) for each ``E`` and ``tau`` of a grid; the ``E``, ``tau`` and
  transform with the lowest held-out error (last quarter of the data, in
  quality units) are kept, and that error ``sigma`` sizes the back-off.
* **power**: each zone's heater power against its own and its neighbours'
  temperatures, ``P_i = a_i + sum_{|j-i|<=1} B_ij T_j + D_i dT_i/dt``, least
  squares on window averages (the heat balances are linear, so the steady state
  ``P = a + B T`` is exact up to the part load).

:class:`EconomicOptimiser` then picks the setpoints ``T`` that minimise the
predicted heater power ``sum_i P_i(T)`` subject to predicted quality
``>= spec + back-off`` (``back-off = max(backoff_min, backoff_sigma * sigma)``
plus the measured-quality trim), each zone's predicted power inside its MV
range less a margin, and ``T`` inside the configured setpoint range, the CV
limit and the damage temperature less ``t_margin_k`` and within
``extrapolate_k`` of the temperatures of parts already measured, with
``extrapolate_backoff_per_k`` of extra quality margin per kelvin outside
them (grid search, then a finer grid around the best point). A saving is
taken only one residence time after the setpoints settled; a raise for
quality raises setpoints only.

:class:`EconomicLayer` runs it inside the runtime (site file section
``autopilot: economic:``): it records the data every ``period_s``, refits and
re-optimises every ``reoptimise_s``, and moves the loops' setpoints towards
the optimum at ``ramp_k_per_min`` only while every zone loop is autonomous.
Feedback on the measured quality keeps it honest: the model's bias on the
parts that left (measured minus predicted, averaged) is applied when it is
negative, and when the averaged measured quality falls below ``spec +
back-off`` an integral trim raises the required quality (and re-optimises
at once); below ``spec + backoff_min / 2`` it returns to the site's own
setpoints. The SafetyGuard of every loop stays the outermost wrapper: this
layer changes setpoints only, never an actuator. Every decision is an event
with its reason.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.optimize import nnls

from autofab.control.base import FloatArray
from autofab.errors import ConfigError

__all__ = [
    "EconomicLayer",
    "EconomicOptimiser",
    "EconomicSettings",
    "PowerModel",
    "QualityModel",
    "fit_power_model",
    "fit_quality_model",
    "ramp_towards",
]

R_GAS = 8.314462618
KELVIN = 273.15
T_REF_K = 413.15
Transform = Literal["first_order", "order_1.5"]


class EconomicSettings(BaseModel):
    """Site file section ``autopilot: economic:`` (units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loops: list[str] = Field(min_length=1)
    quality: str
    spec: float
    power: list[str] | None = None
    residence_s: float = Field(gt=0)
    t_damage_degc: float | None = None
    t_margin_k: float = Field(default=10.0, ge=0)
    t_entry_degc: float = 25.0
    sp_lo: list[float] | float | None = None
    sp_hi: list[float] | float | None = None
    period_s: float = Field(default=5.0, gt=0)
    reoptimise_s: float = Field(default=600.0, gt=0)
    refit_s: float = Field(default=1800.0, gt=0)
    ramp_k_per_min: float = Field(default=1.0, gt=0)
    backoff_sigma: float = Field(default=2.0, ge=0)
    backoff_min: float = Field(default=0.01, ge=0)
    trim_gain: float = Field(default=0.05, ge=0)
    trim_max: float = Field(default=0.05, ge=0)
    min_parts: int = Field(default=200, ge=10)
    extrapolate_k: float = Field(default=15.0, ge=0)
    extrapolate_backoff_per_k: float = Field(default=0.001, ge=0)
    power_margin: float = Field(default=0.2, ge=0)
    min_saving: float = Field(default=0.005, ge=0)
    grid_points: int = Field(default=100_000, ge=16)
    store: str | None = None

    @model_validator(mode="after")
    def _check(self) -> EconomicSettings:
        n = len(self.loops)
        if self.power is not None and len(self.power) != n:
            raise ValueError(f"'power' has {len(self.power)} tags; expected one per loop ({n})")
        for name in ("sp_lo", "sp_hi"):
            v = getattr(self, name)
            if isinstance(v, list) and len(v) != n:
                raise ValueError(f"'{name}' has {len(v)} entries; expected one per loop ({n})")
        return self


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    economic: EconomicSettings | None = None


# ------------------------------------------------------------------ models
def _g(q: FloatArray, transform: str) -> FloatArray:
    q = np.clip(q, 0.0, 0.999)
    if transform == "first_order":
        return np.asarray(-np.log1p(-q))
    return np.asarray(2.0 * ((1.0 - q) ** -0.5 - 1.0))


def _g_inv(z: FloatArray, transform: str) -> FloatArray:
    z = np.maximum(z, 0.0)
    if transform == "first_order":
        return np.asarray(-np.expm1(-z))
    return np.asarray(1.0 - (1.0 + z / 2.0) ** -2.0)


def _arrhenius(t_degc: FloatArray, e_j_mol: float) -> FloatArray:
    t_k = np.asarray(t_degc, dtype=np.float64) + KELVIN
    return np.asarray(np.exp(-e_j_mol / R_GAS * (1.0 / t_k - 1.0 / T_REF_K)))


class QualityModel:
    """Steady-state exit quality against the zone temperatures (degC).

    ``q = g^-1(c + sum_i w_i x_i)`` with ``x_i`` the mean of
    ``exp(-E/R (1/T_p - 1/T_ref))`` over the part's stay in zone ``i``, ``T_p``
    the part temperature: a first-order lag (``tau_part_s``) of the zone air
    temperature along the path, starting at ``t_entry_degc``.
    """

    def __init__(
        self,
        e_j_mol: float,
        weights: Any,
        intercept: float,
        transform: str = "first_order",
        sigma: float = 0.0,
        n_parts: int = 0,
        tau_part_s: float = 0.0,
        residence_s: float = 1200.0,
        t_entry_degc: float = 25.0,
    ) -> None:
        self.e_j_mol = float(e_j_mol)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.intercept = float(intercept)
        self.transform = transform
        self.sigma = float(sigma)
        self.n_parts = n_parts
        self.tau_part_s = float(tau_part_s)
        self.residence_s = float(residence_s)
        self.t_entry_degc = float(t_entry_degc)

    def features(self, t_degc: Any) -> FloatArray:
        """Path features at constant zone temperatures ``t_degc`` (``(..., n)``)."""
        t = np.asarray(t_degc, dtype=np.float64)
        n = t.shape[-1]
        m = 20 * n
        zone = np.arange(m) * n // m
        path = t[..., zone]
        return path_arrhenius(
            path.reshape(-1, m),
            zone,
            n,
            self.residence_s / m,
            self.e_j_mol,
            self.tau_part_s,
            self.t_entry_degc,
        ).reshape(*t.shape[:-1], n)

    def predict(self, t_degc: Any) -> FloatArray:
        """Quality at zone temperatures ``t_degc`` (shape ``(..., n_zones)``)."""
        return self.predict_features(self.features(t_degc))

    def predict_features(self, x: FloatArray) -> FloatArray:
        """Quality from path features ``x`` (mean Arrhenius factor per zone)."""
        return _g_inv(self.intercept + x @ self.weights, self.transform)

    def to_dict(self) -> dict[str, Any]:
        """Parameters for reports."""
        return {
            "e_kj_mol": round(self.e_j_mol / 1000.0, 1),
            "tau_part_s": self.tau_part_s,
            "weights": np.round(self.weights, 4).tolist(),
            "intercept": round(self.intercept, 4),
            "transform": self.transform,
            "sigma": round(self.sigma, 5),
            "n_parts": self.n_parts,
        }


def part_temperature(path: FloatArray, dt: float, tau_s: float, t_entry_degc: float) -> FloatArray:
    """First-order lag ``tau_s`` of the air temperature ``path`` (k, m), from ``t_entry_degc``."""
    if tau_s <= 0:
        return path
    a = math.exp(-dt / tau_s)
    tp = np.empty_like(path)
    x = np.full(path.shape[0], t_entry_degc, dtype=np.float64)
    for j in range(path.shape[1]):
        x = path[:, j] + (x - path[:, j]) * a
        tp[:, j] = x
    return tp


def zone_means(tp: FloatArray, zone: Any, n: int, e_j_mol: float) -> FloatArray:
    """Mean Arrhenius factor per zone of the part temperatures ``tp`` (k, m)."""
    zone = np.asarray(zone)
    f = _arrhenius(tp, e_j_mol)
    out = np.empty((tp.shape[0], n))
    for i in range(n):
        out[:, i] = f[:, zone == i].mean(axis=1)
    return out


def path_arrhenius(
    path: FloatArray,
    zone: Any,
    n: int,
    dt: float,
    e_j_mol: float,
    tau_s: float,
    t_entry_degc: float,
) -> FloatArray:
    """Mean Arrhenius factor per zone of the part temperature along paths.

    ``path`` (k, m): zone air temperature met at each of ``m`` steps of ``dt``
    seconds; ``zone`` (m,): the zone of each step. The part temperature is a
    first-order lag ``tau_s`` of it (exact exponential step), from
    ``t_entry_degc``.
    """
    return zone_means(part_temperature(path, dt, tau_s, t_entry_degc), zone, n, e_j_mol)


class PowerModel:
    """Steady-state zone powers ``P = a + B T`` (kW, degC)."""

    def __init__(self, a: Any, b: Any, rmse: Any = None) -> None:
        self.a = np.asarray(a, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.rmse = np.zeros_like(self.a) if rmse is None else np.asarray(rmse, dtype=np.float64)

    def predict(self, t_degc: Any) -> FloatArray:
        """Zone powers at temperatures ``t_degc`` (shape ``(..., n)`` -> ``(..., n)``)."""
        return np.asarray(self.a + np.asarray(t_degc, dtype=np.float64) @ self.b.T)

    def to_dict(self) -> dict[str, Any]:
        """Parameters for reports."""
        return {
            "a": np.round(self.a, 3).tolist(),
            "b": np.round(self.b, 4).tolist(),
            "rmse": np.round(self.rmse, 3).tolist(),
        }


def part_paths(
    t: FloatArray,
    temps: FloatArray,
    t_exit: FloatArray,
    residence_s: float,
    segment: FloatArray | None = None,
) -> tuple[FloatArray, Any, Any, float]:
    """Zone air temperature along the path of each part that left at ``t_exit``.

    Returns ``(path, zone, keep, dt)``: ``path`` (k', m) for the parts whose
    whole path was recorded (``keep``, shape (k,)), the zone of each of the
    ``m`` steps and the step, s.
    """
    n = temps.shape[1]
    k = t_exit.size
    if t.size < 2 or k == 0:
        return np.zeros((0, n)), np.arange(n), np.zeros(k, dtype=bool), residence_s / n
    dt = float(np.median(np.diff(t)))
    m = max(n, round(residence_s / dt))
    steps = t_exit[:, None] - residence_s + (np.arange(m) + 0.5) * (residence_s / m)
    idx = np.clip(np.searchsorted(t, steps), 0, t.size - 1)
    idx_prev = np.clip(idx - 1, 0, t.size - 1)
    nearer = np.abs(t[idx_prev] - steps) < np.abs(t[idx] - steps)
    idx = np.where(nearer, idx_prev, idx)
    keep = np.all(np.abs(t[idx] - steps) <= 1.5 * dt, axis=1)
    if segment is not None:
        keep &= np.all(segment[idx] == segment[idx[:, :1]], axis=1)
    zone = np.arange(m) * n // m
    path = temps[idx[keep], zone[None, :]] if np.any(keep) else np.zeros((0, m))
    return path, zone, np.asarray(keep), residence_s / m


def part_features(
    t: FloatArray,
    temps: FloatArray,
    t_exit: FloatArray,
    residence_s: float,
    e_j_mol: float,
    segment: FloatArray | None = None,
    tau_part_s: float = 0.0,
    t_entry_degc: float = 25.0,
) -> tuple[FloatArray, FloatArray]:
    """Path features of the parts that left at ``t_exit`` (see :class:`QualityModel`).

    Parameters
    ----------
    t : ndarray, shape (m,)
        Sample times, s (increasing, about evenly spaced).
    temps : ndarray, shape (m, n)
        Zone temperatures, degC.
    t_exit : ndarray, shape (k,)
        Exit times of the parts, s.
    residence_s : float
        Time a part spends in the oven, s (``residence_s / n`` per zone).
    e_j_mol : float
        Activation energy, J/mol.
    segment : ndarray, optional
        Recording segment of each sample; a part whose path crosses two is dropped.
    tau_part_s, t_entry_degc : float
        Part heating time constant, s, and temperature at the entry, degC.

    Returns
    -------
    x : ndarray, shape (k', n)
        Features of the parts whose whole path was recorded.
    keep : ndarray of bool, shape (k,)
        Which parts those are.
    """
    path, zone, keep, dt = part_paths(t, temps, t_exit, residence_s, segment)
    n = temps.shape[1]
    return path_arrhenius(path, zone, n, dt, e_j_mol, tau_part_s, t_entry_degc), keep


def fit_quality_model(
    t: FloatArray,
    temps: FloatArray,
    t_exit: FloatArray,
    quality: FloatArray,
    residence_s: float,
    segment: FloatArray | None = None,
    e_grid_kj: tuple[float, ...] = tuple(range(30, 125, 10)),
    tau_grid_s: tuple[float, ...] = (0.0, 60.0, 120.0, 180.0, 240.0, 360.0),
    t_entry_degc: float = 25.0,
) -> QualityModel | None:
    """Fit :class:`QualityModel` on recorded data (``None`` with too few parts).

    Grid over the activation energy, the part time constant and the
    transform; weights by non-negative least squares on the first three
    quarters of the parts, the choice by the error on the last quarter.
    """
    best: tuple[float, QualityModel] | None = None
    path, zone, keep, dt = part_paths(t, temps, t_exit, residence_s, segment)
    q = quality[keep]
    k = q.size
    if k < 20:
        return None
    n = temps.shape[1]
    n_fit = max(10, int(0.75 * k))
    for tau in tau_grid_s:
        tp = part_temperature(path, dt, tau, t_entry_degc)
        for e_kj in e_grid_kj:
            x = zone_means(tp, zone, n, e_kj * 1000.0)
            for tr in ("first_order", "order_1.5"):
                z = _g(q, tr)
                a = np.hstack([x, np.ones((k, 1)), -np.ones((k, 1))])
                coef, _ = nnls(a[:n_fit], z[:n_fit])
                m = QualityModel(
                    e_kj * 1000.0,
                    coef[:-2],
                    coef[-2] - coef[-1],
                    tr,
                    tau_part_s=tau,
                    residence_s=residence_s,
                    t_entry_degc=t_entry_degc,
                )
                held = q[n_fit:] - m.predict_features(x[n_fit:]) if k > n_fit else np.zeros(1)
                err = float(np.sqrt(np.mean(held**2)))
                if best is None or err < best[0]:
                    best = (err, m)
    if best is None:
        return None
    err, m = best
    # refit the chosen form on all the data; the held-out error stays the sigma
    x = zone_means(part_temperature(path, dt, m.tau_part_s, t_entry_degc), zone, n, m.e_j_mol)
    z = _g(q, m.transform)
    coef, _ = nnls(np.hstack([x, np.ones((k, 1)), -np.ones((k, 1))]), z)
    return QualityModel(
        m.e_j_mol,
        coef[:-2],
        coef[-2] - coef[-1],
        m.transform,
        err,
        k,
        m.tau_part_s,
        residence_s,
        t_entry_degc,
    )


def fit_power_model(
    t: FloatArray,
    temps: FloatArray,
    power: FloatArray,
    window_s: float = 300.0,
    segment: FloatArray | None = None,
) -> PowerModel | None:
    """Least squares on window averages, per zone (``None``: too few windows).

    The zones are in conveyor order and exchange heat with their neighbours
    only, so ``P_i = a_i + sum_{|j-i|<=1} B_ij T_j + D_i dT_i/dt`` (the heat
    balance of zone ``i``: losses, coupling, stored heat).
    """
    if t.size < 3:
        return None
    dt = float(np.median(np.diff(t)))
    w = max(2, round(window_s / dt))
    rows_t, rows_d, rows_p = [], [], []
    for s in range(0, t.size - w + 1, max(1, w // 4)):
        sl = slice(s, s + w)
        if segment is not None and segment[s] != segment[s + w - 1]:
            continue
        span = float(t[s + w - 1] - t[s])
        if span <= 0 or span > 1.5 * w * dt:
            continue
        rows_t.append(temps[sl].mean(axis=0))
        # slope of a straight-line fit: the mean rate of change over the window
        tc = t[sl] - t[sl].mean()
        rows_d.append((tc @ (temps[sl] - temps[sl].mean(axis=0))) / float(tc @ tc))
        rows_p.append(power[sl].mean(axis=0))
    n = temps.shape[1]
    if len(rows_t) < 4 * n + 2:
        return None
    tt, dd, pp = np.array(rows_t), np.array(rows_d), np.array(rows_p)
    a = np.zeros(n)
    b = np.zeros((n, n))
    rmse = np.zeros(n)
    for i in range(n):
        nb = [j for j in (i - 1, i, i + 1) if 0 <= j < n]
        a_mat = np.hstack([np.ones((len(tt), 1)), tt[:, nb], dd[:, [i]]])
        coef, *_ = np.linalg.lstsq(a_mat, pp[:, i], rcond=None)
        a[i] = coef[0]
        b[i, nb] = coef[1 : 1 + len(nb)]
        rmse[i] = float(np.sqrt(np.mean((pp[:, i] - a_mat @ coef) ** 2)))
    return PowerModel(a, b, rmse)


# -------------------------------------------------------------- optimiser
def ramp_towards(current: FloatArray, target: FloatArray, max_step: float) -> FloatArray:
    """Move ``current`` towards ``target`` by at most ``max_step`` per entry."""
    return np.asarray(current + np.clip(target - current, -max_step, max_step))


class EconomicOptimiser:
    """Least predicted heater power subject to predicted quality and limits.

    Parameters
    ----------
    quality, power : QualityModel, PowerModel
        Steady-state models.
    t_lo, t_hi : array_like
        Setpoint range per zone, degC (limits, damage and data range applied).
    p_lo, p_hi : array_like
        Allowed predicted zone power, kW (MV range less a margin).
    grid : int
        Total grid points of the coarse search (split over the zones).
    seen_lo, seen_hi : array_like, optional
        Temperature range of the data the models were fitted on, degC.
    ext_backoff_per_k : float
        Extra quality margin per kelvin outside that range (summed over zones).
    """

    def __init__(
        self,
        quality: QualityModel,
        power: PowerModel,
        t_lo: Any,
        t_hi: Any,
        p_lo: Any,
        p_hi: Any,
        grid: int = 200_000,
        seen_lo: Any = None,
        seen_hi: Any = None,
        ext_backoff_per_k: float = 0.0,
    ) -> None:
        self.quality = quality
        self.power = power
        self.t_lo = np.asarray(t_lo, dtype=np.float64)
        self.t_hi = np.asarray(t_hi, dtype=np.float64)
        self.p_lo = np.asarray(p_lo, dtype=np.float64)
        self.p_hi = np.asarray(p_hi, dtype=np.float64)
        self.grid = grid
        self.seen_lo = self.t_lo if seen_lo is None else np.asarray(seen_lo, dtype=np.float64)
        self.seen_hi = self.t_hi if seen_hi is None else np.asarray(seen_hi, dtype=np.float64)
        self.ext_backoff_per_k = float(ext_backoff_per_k)

    def extrapolation_backoff(self, t_degc: Any) -> FloatArray:
        """Extra quality margin at ``t_degc`` for the kelvins outside the data."""
        t = np.asarray(t_degc, dtype=np.float64)
        out = np.maximum(self.seen_lo - t, 0.0) + np.maximum(t - self.seen_hi, 0.0)
        return np.asarray(self.ext_backoff_per_k * out.sum(axis=-1))

    def _search(
        self, axes: list[FloatArray], q_min: float
    ) -> tuple[FloatArray, float, float] | None:
        pts = np.array(list(itertools.product(*axes)), dtype=np.float64)
        q = self.quality.predict(pts)
        p = self.power.predict(pts)
        ok = (
            (q >= q_min + self.extrapolation_backoff(pts))
            & np.all(p >= self.p_lo, axis=1)
            & np.all(p <= self.p_hi, axis=1)
        )
        if not np.any(ok):
            return None
        cost = np.where(ok, p.sum(axis=1), np.inf)
        i = int(np.argmin(cost))
        return pts[i], float(cost[i]), float(q[i])

    def solve(self, q_min: float) -> tuple[FloatArray, float, float] | None:
        """Setpoints, predicted total power (kW) and quality; ``None`` if none is feasible."""
        n = self.t_lo.size
        if np.any(self.t_hi < self.t_lo):
            return None
        m = max(2, int(self.grid ** (1.0 / n)))
        axes = [np.linspace(lo, hi, m) for lo, hi in zip(self.t_lo, self.t_hi, strict=True)]
        best = self._search(axes, q_min)
        if best is None:
            return None
        step = (self.t_hi - self.t_lo) / (m - 1)
        fine = [
            np.linspace(max(lo, c - s), min(hi, c + s), min(m, 9))
            for lo, hi, c, s in zip(self.t_lo, self.t_hi, best[0], step, strict=True)
        ]
        better = self._search(fine, q_min)
        if better is not None and better[1] <= best[1]:
            best = better
        return best

    def predicted_power(self, t_degc: Any) -> float:
        """Predicted total heater power at ``t_degc``, kW."""
        return float(np.sum(self.power.predict(np.asarray(t_degc, dtype=np.float64))))


# ------------------------------------------------------------------ layer
class EconomicLayer:
    """Runs the economic optimiser above a group of the runtime's loops.

    Parameters
    ----------
    settings : EconomicSettings
        The validated site file section.
    loops : list
        The runtime's loop runners named in ``settings.loops`` (conveyor order):
        objects with ``name``, ``sp``, ``set_setpoint``, ``cv_tags``,
        ``mv_tags``, ``cfg`` and ``loop.controller``.
    quality_tag : str
        Full path of the quality tag.
    power_tags : list of str
        Full paths of the zone power tags.
    store : path, optional
        Where the recorded data are kept between runs (``.npz``).
    """

    def __init__(
        self,
        settings: EconomicSettings,
        loops: list[Any],
        quality_tag: str,
        power_tags: list[str],
        store: str | Path | None = None,
    ) -> None:
        self.s = settings
        self.loops = loops
        self.n = len(loops)
        self.quality_tag = quality_tag
        self.power_tags = power_tags
        self.temp_tags = [lr.cv_tags[0].path for lr in loops]
        self.store = None if store is None else Path(store)
        self.period_s = settings.period_s
        self.sp_site = np.array([float(lr.sp[0]) for lr in loops])
        n = self.n

        def per_loop(v: Any, default: FloatArray) -> FloatArray:
            if v is None:
                return default
            return np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()

        cv_hi = np.array([_first(lr.cfg.limits.cv_hi, lr.cv_tags[0].hi) for lr in loops])
        cv_lo = np.array([_first(lr.cfg.limits.cv_lo, lr.cv_tags[0].lo) for lr in loops])
        hi = cv_hi - settings.t_margin_k
        if settings.t_damage_degc is not None:
            hi = np.minimum(hi, settings.t_damage_degc - settings.t_margin_k)
        self.t_hi = np.minimum(per_loop(settings.sp_hi, hi), hi)
        self.t_lo = np.maximum(per_loop(settings.sp_lo, cv_lo), cv_lo)
        self.p_lo = (
            np.array([_first(lr.cfg.limits.mv_lo, lr.mv_tags[0].lo) for lr in loops])
            + settings.power_margin
        )
        self.p_hi = (
            np.array([_first(lr.cfg.limits.mv_hi, lr.mv_tags[0].hi) for lr in loops])
            - settings.power_margin
        )
        self.events: list[dict[str, Any]] = []
        self._learning = any(
            callable(getattr(lr.loop.controller, "phase_code", None)) for lr in loops
        )
        self._t: list[float] = []
        self._temps: list[list[float]] = []
        self._power: list[list[float]] = []
        self._seg: list[int] = []
        self._q_t: list[float] = []
        self._q_v: list[float] = []
        self._old: dict[str, FloatArray] | None = None
        self._load()
        self.quality_model: QualityModel | None = None
        self.power_model: PowerModel | None = None
        self.target: FloatArray | None = None
        self.bias = 0.0
        self.trim = 0.0
        self.q_filt: float | None = None
        self._last_q: float | None = None
        self._next_fit = 0.0
        self._next_opt = 0.0
        self._next_save = 600.0
        self._active = False
        # the run starts at the site's steady profile: its parts are already known
        self._settled_at: float | None = -settings.residence_s
        self._moves = 0
        self._fits = 0

    # --------------------------------------------------------------- build
    @classmethod
    def from_site(
        cls, section: dict[str, Any], loops: list[Any], resolve: Any, source: str | None = None
    ) -> EconomicLayer | None:
        """Build from the site file's ``autopilot:`` section (``None`` without ``economic``).

        ``resolve(ref, field) -> Tag`` resolves a tag reference as the runtime does.
        """
        from autofab.site.loader import validate_section

        sec = validate_section(_Section, section, "autopilot", source)
        s = sec.economic
        if s is None:
            return None
        by_name = {lr.name: lr for lr in loops}
        picked = []
        for i, name in enumerate(s.loops):
            if name not in by_name:
                raise ConfigError(
                    f"no loop {name!r}; loops: {', '.join(by_name)}",
                    source=source,
                    field=f"autopilot.economic.loops.{i}",
                )
            picked.append(by_name[name])
        quality = resolve(s.quality, "autopilot.economic.quality").path
        if s.power is not None:
            power = [
                resolve(p, f"autopilot.economic.power.{i}").path for i, p in enumerate(s.power)
            ]
        else:
            power = [lr.mv_tags[0].path for lr in picked]
        store = s.store
        if store is None:
            reg = next(
                (lr.cfg.params.get("registry") for lr in picked if lr.cfg.params.get("registry")),
                None,
            )
            store = None if reg is None else str(Path(reg) / "economic.npz")
        return cls(s, picked, quality, power, store)

    # ------------------------------------------------------------- storage
    def _load(self) -> None:
        if self.store is None or not self.store.exists():
            return
        with np.load(self.store) as d:
            if d["temps"].shape[1:] != (self.n,):
                return
            t = d["t"]
            shift = float(t[-1]) + 2 * self.s.residence_s if t.size else 0.0
            self._t = (t - shift).tolist()
            self._temps = d["temps"].tolist()
            self._power = d["power"].tolist()
            seg = d["segment"]
            self._seg = (seg - (int(seg.max()) + 1 if seg.size else 0)).astype(int).tolist()
            self._q_t = (d["q_t"] - shift).tolist()
            self._q_v = d["q_v"].tolist()

    def _save(self) -> None:
        if self.store is None or not self._t:
            return
        self.store.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.store.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            t=np.array(self._t),
            temps=np.array(self._temps),
            power=np.array(self._power),
            segment=np.array(self._seg),
            q_t=np.array(self._q_t),
            q_v=np.array(self._q_v),
        )
        tmp.replace(self.store)

    # ---------------------------------------------------------------- step
    def _event(self, t: float, kind: str, reason: str, **extra: Any) -> None:
        self.events.append({"t": t, "event": "economic", "kind": kind, "reason": reason, **extra})

    def _autonomous(self) -> bool:
        for lr in self.loops:
            code = getattr(lr.loop.controller, "phase_code", None)
            if not callable(code) or code() != 4.0:
                return False
        return True

    def _fit(self, t: float) -> None:
        self._next_fit = t + self.s.refit_s
        if len(self._q_t) < self.s.min_parts:
            return
        tt, temps = np.array(self._t), np.array(self._temps)
        seg = np.array(self._seg, dtype=np.float64)
        qm = fit_quality_model(
            tt,
            temps,
            np.array(self._q_t),
            np.array(self._q_v),
            self.s.residence_s,
            seg,
            t_entry_degc=self.s.t_entry_degc,
        )
        pm = fit_power_model(tt, temps, np.array(self._power), segment=seg)
        if qm is None or pm is None or qm.n_parts < self.s.min_parts:
            return
        self.quality_model, self.power_model = qm, pm
        self._fits += 1
        self._event(
            t,
            "fit",
            f"quality model on {qm.n_parts} parts (E {qm.e_j_mol / 1000:.0f} kJ/mol, "
            f"part lag {qm.tau_part_s:g} s, {qm.transform}, held-out error {qm.sigma:.4f}); "
            f"power model rmse {np.round(pm.rmse, 3).tolist()} kW",
            quality=qm.to_dict(),
            power=pm.to_dict(),
        )

    def backoff(self) -> float:
        """Quality margin over spec the optimiser keeps (model error, floor, trim)."""
        sigma = self.quality_model.sigma if self.quality_model is not None else 0.0
        return max(self.s.backoff_min, self.s.backoff_sigma * sigma) + self.trim

    def _on_part(self, t: float, q: float) -> None:
        """A new quality measurement: residual bias, filtered quality, trim."""
        self.q_filt = q if self.q_filt is None else self.q_filt + (q - self.q_filt) / 8.0
        qm = self.quality_model
        if qm is not None and len(self._t) > 2:
            tt = np.array(self._t[-int(2 * self.s.residence_s / self.s.period_s) :])
            temps = np.array(self._temps[-tt.size :])
            x, keep = part_features(
                tt,
                temps,
                np.array([t]),
                self.s.residence_s,
                qm.e_j_mol,
                tau_part_s=qm.tau_part_s,
                t_entry_degc=qm.t_entry_degc,
            )
            if keep[0]:
                r = q - float(qm.predict_features(x)[0])
                self.bias += (r - self.bias) / 40.0
        if not self._active or self.target is None:
            return
        spec = self.s.spec
        need = spec + max(self.s.backoff_min, self.s.backoff_sigma * (qm.sigma if qm else 0.0))
        if self.q_filt < spec + self.s.backoff_min / 2 and not np.allclose(
            self.target, self.sp_site
        ):
            self.target = self.sp_site.copy()
            self._event(
                t,
                "return",
                f"measured quality {self.q_filt:.4f} within {self.s.backoff_min / 2:g} of "
                f"spec {spec:g}: back to the site setpoints",
                target=self.target.tolist(),
            )
            self._next_opt = t + self.s.residence_s * 2
        elif self.q_filt < need and self.trim < self.s.trim_max:
            old = self.trim
            self.trim = min(self.s.trim_max, self.trim + self.s.trim_gain * (need - self.q_filt))
            if self.trim - old > 1e-4 and t >= self._next_opt - self.s.reoptimise_s + 60.0:
                self._next_opt = t  # re-optimise now with the higher requirement

    def _optimise(self, t: float) -> None:
        self._next_opt = t + self.s.reoptimise_s
        qm, pm = self.quality_model, self.power_model
        if qm is None or pm is None:
            return
        # the range with quality evidence: temperatures of parts that have left
        tt = np.array(self._t)
        temps = np.array(self._temps)[tt <= t - self.s.residence_s]
        if temps.shape[0] == 0:
            return
        seen_lo = temps.min(axis=0) - self.s.extrapolate_k
        seen_hi = temps.max(axis=0) + self.s.extrapolate_k
        opt = EconomicOptimiser(
            qm,
            pm,
            np.maximum(self.t_lo, seen_lo),
            np.minimum(self.t_hi, seen_hi),
            self.p_lo,
            self.p_hi,
            seen_lo=temps.min(axis=0),
            seen_hi=temps.max(axis=0),
            ext_backoff_per_k=self.s.extrapolate_backoff_per_k,
            grid=self.s.grid_points,
        )
        q_min = self.s.spec + self.backoff() - min(self.bias, 0.0)
        cur = self.target if self.target is not None else np.array([lr.sp[0] for lr in self.loops])
        if float(qm.predict(cur)) + min(self.bias, 0.0) < q_min:
            # a raise for quality only raises: no zone goes below its current target
            opt.t_lo = np.minimum(np.maximum(opt.t_lo, cur), opt.t_hi)
        res = opt.solve(q_min)
        if res is None:
            self._event(
                t,
                "hold",
                f"no profile predicted to reach quality {q_min:.4f} inside the limits: hold",
            )
            return
        sp, p_new, q_pred = res
        p_cur = opt.predicted_power(cur)
        q_cur = float(qm.predict(cur)) + min(self.bias, 0.0)
        if q_cur >= q_min and p_cur - p_new < self.s.min_saving * max(p_cur, 1e-9):
            return
        if q_cur >= q_min and (
            self._settled_at is None or t - self._settled_at < self.s.residence_s
        ):
            return  # a saving waits until the parts made at the last profile have left
        self.target = np.round(sp, 1)
        self._moves += 1
        why = "lower predicted power" if q_cur >= q_min else "raise predicted quality"
        self._event(
            t,
            "setpoints",
            f"{why}: target {self.target.tolist()} degC, predicted power {p_new:.2f} kW "
            f"(now {p_cur:.2f}), predicted quality {q_pred:.4f}, measured-bias correction "
            f"{min(self.bias, 0.0):+.4f}, required spec {self.s.spec:g} + back-off "
            f"{self.backoff():.4f}",
            target=self.target.tolist(),
        )

    def step(self, t: float, bus: Any) -> None:
        """Record, refit, re-optimise and ramp the setpoints (one period)."""
        vals = []
        for p in [*self.temp_tags, *self.power_tags]:
            s = bus.latest(p)
            vals.append(math.nan if s is None else float(s.value))
        qs = bus.latest(self.quality_tag)
        if all(map(math.isfinite, vals)):
            self._t.append(t)
            self._temps.append(vals[: self.n])
            self._power.append(vals[self.n :])
            self._seg.append(0)
        if qs is not None and math.isfinite(qs.value) and qs.value != self._last_q:
            self._last_q = float(qs.value)
            self._q_t.append(t)
            self._q_v.append(self._last_q)
            self._on_part(t, self._last_q)
        if t >= self._next_save:
            self._next_save = t + 600.0
            self._save()
        if not self._learning:
            return  # no autopilot in the group (e.g. PI loops): record only
        if t >= self._next_fit:
            self._fit(t)
        auto = self._autonomous()
        if auto != self._active:
            self._active = auto
            self._event(
                t,
                "active" if auto else "paused",
                "every zone loop autonomous" if auto else "a zone loop left autonomous: hold",
            )
            self._next_opt = min(self._next_opt, t)
        if not auto:
            return
        if t >= self._next_opt:
            self._optimise(t)
        if self.target is None:
            return
        cur = np.array([float(lr.sp[0]) for lr in self.loops])
        if np.allclose(cur, self.target, rtol=0.0, atol=1e-9):
            if self._settled_at is None:
                self._settled_at = t
            return
        self._settled_at = None
        nxt = ramp_towards(cur, self.target, self.s.ramp_k_per_min * self.s.period_s / 60.0)
        qm = self.quality_model
        if (
            qm is not None
            and float(qm.predict(nxt)) < float(qm.predict(cur))
            and float(qm.predict(nxt)) + min(self.bias, 0.0) < self.s.spec + self.backoff()
        ):
            # raise first, lower later: the path stays predicted in spec
            if np.any(nxt > cur):
                nxt = np.maximum(nxt, cur)
        for lr, v, c in zip(self.loops, nxt, cur, strict=True):
            if v != c:
                lr.set_setpoint([float(v)])

    def report(self) -> dict[str, Any]:
        """State, models and counters for the run report."""
        self._save()
        return {
            "loops": [lr.name for lr in self.loops],
            "active": self._active,
            "setpoints": [float(lr.sp[0]) for lr in self.loops],
            "target": None if self.target is None else self.target.tolist(),
            "site_setpoints": self.sp_site.tolist(),
            "fits": self._fits,
            "moves": self._moves,
            "backoff": self.backoff(),
            "trim": self.trim,
            "bias": self.bias,
            "quality_filtered": self.q_filt,
            "parts_recorded": len(self._q_t),
            "quality_model": None if self.quality_model is None else self.quality_model.to_dict(),
            "power_model": None if self.power_model is None else self.power_model.to_dict(),
            "store": None if self.store is None else str(self.store),
            "events": list(self.events),
        }


def _first(v: Any, default: float) -> float:
    """First entry of a per-loop limit (scalar or list), or ``default``."""
    if v is None:
        return float(default)
    if isinstance(v, list):
        return float(v[0])
    return float(v)
