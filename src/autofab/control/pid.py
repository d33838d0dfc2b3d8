"""Discrete PID controller in ISA (standard) form, one loop per channel.

Control law (continuous form, per channel ``i`` mapping ``y[i] -> u[i]``)::

    u = kp * ( b*sp - y  +  1/ti * integral(sp - y) dt  +  td * d/dt(-y_f) )

with ``y_f`` the measurement filtered by a first-order filter of time constant
``td/n``. Discretisation (Åström & Hägglund, *Advanced PID Control*, ISA 2006,
ch. 3; Åström & Wittenmark, *Computer-Controlled Systems*, ch. 8), sample
time ``h = dt``:

* proportional ``P = kp*(b*sp - y)`` (set-point weight ``b``);
* derivative on measurement, backward difference (stable for every ``td``):
  ``D = ad*D - bd*(y - y_old)``, ``ad = td/(td + n*h)``,
  ``bd = kp*td*n/(td + n*h)``;
* integral, forward Euler with **back-calculation** anti-windup:
  ``I += kp*h/ti*e + (h/tt)*(u_applied - v)``, ``v = P + I + D`` the
  unsaturated output, ``u_applied`` the value really written: first the
  controller's own clamp to ``[u_lo, u_hi]``, then corrected by
  :meth:`PIDController.track` with what the safety guard actually applied
  (clamps, rate limits, holds). The tracking time constant ``tt`` defaults to
  ``sqrt(ti*td)`` (``ti`` for a PI), never below ``h``.

Bumpless transfer: :meth:`PIDController.handover` (called by the guarded loop
whenever the controller is not in control: manual, advisory, hold, interlock,
fallback) sets the integrator so that the next output continues from the
applied MV; :meth:`PIDController.set_params` keeps the output unchanged when
tuning changes. A negative ``kp`` gives direct action (output rises with
``y``, e.g. cooling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autofab.control.base import Action, Controller, FloatArray, Observation
from autofab.errors import ConfigError, NotFittedError

Param = float | Sequence[float] | FloatArray

_PARAMS = ("kp", "ti", "td", "n", "b", "u_lo", "u_hi", "tt")


def _as_vec(name: str, value: Param | None) -> FloatArray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"PID parameter {name!r} must be a number or a non-empty list")
    return arr


def _floats(value: Any) -> list[float]:
    """Flat list of Python floats (the per-channel update works on plain floats)."""
    out: list[float] = np.asarray(value, dtype=np.float64).ravel().tolist()
    return out


def _clip(v: float, lo: float, hi: float) -> float:
    """``v`` limited to ``[lo, hi]``; NaN stays NaN (as ``np.clip``)."""
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


class PIDController(Controller):
    """Decentralised ISA-form PID controllers, channel ``i`` maps ``y[i] -> u[i]``.

    Parameters
    ----------
    kp : float or sequence
        Proportional gain, MV unit per CV unit; negative for direct action.
    ti : float or sequence
        Integral time, s (``inf``: no integral action).
    td : float or sequence
        Derivative time, s (0: no derivative action).
    dt : float
        Sample time (loop period), s.
    n : float or sequence
        Derivative filter divisor: the filter time constant is ``td/n`` s.
    b : float or sequence
        Set-point weight of the proportional term (0..1 typical).
    u_lo, u_hi : float or sequence
        Output limits in MV units.
    u0 : float or sequence, optional
        Initial output; the integrator starts so that the first output is
        ``u0`` (else ``observation.u_prev`` when given, else the integrator
        starts at 0).
    tt : float or sequence, optional
        Anti-windup tracking time constant, s (default ``sqrt(ti*td)``, or
        ``ti`` when ``td == 0``; never below ``dt``).
    antiwindup : bool
        Back-calculation on (default). Off only to demonstrate windup.
    """

    def __init__(
        self,
        kp: Param,
        ti: Param = math.inf,
        td: Param = 0.0,
        *,
        dt: float = 1.0,
        n: Param = 10.0,
        b: Param = 1.0,
        u_lo: Param = -math.inf,
        u_hi: Param = math.inf,
        u0: Param | None = None,
        tt: Param | None = None,
        antiwindup: bool = True,
    ) -> None:
        self.kp = kp
        self.ti = ti
        self.td = td
        self.dt = dt
        self.n = n
        self.b = b
        self.u_lo = u_lo
        self.u_hi = u_hi
        self.u0 = u0
        self.tt = tt
        self.antiwindup = antiwindup
        self._validate()
        self._ready = False
        self._nch: int | None = None
        # per-channel state (lists of floats): i, d, y, sp, p, v, u
        self._state: dict[str, list[float]] = {}
        self._pending: list[float] | None = None

    # ------------------------------------------------------------------ setup
    def _validate(self) -> None:
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise ConfigError(f"PID 'dt' must be a finite number of seconds > 0, got {self.dt!r}")
        vecs = {k: _as_vec(k, getattr(self, k)) for k in _PARAMS if getattr(self, k) is not None}
        if self.u0 is not None:
            vecs["u0"] = _as_vec("u0", self.u0)
        sizes = {v.size for v in vecs.values()} - {1}
        if len(sizes) > 1:
            raise ConfigError(
                "PID parameters given as lists must all have the same length (one per "
                f"channel); got lengths {sorted(sizes)}",
            )
        checks = {
            "kp": lambda a: np.isfinite(a),
            "ti": lambda a: a > 0,
            "td": lambda a: np.isfinite(a) & (a >= 0),
            "n": lambda a: np.isfinite(a) & (a > 0),
            "b": lambda a: np.isfinite(a),
            "u_lo": lambda a: ~np.isnan(a),
            "u_hi": lambda a: ~np.isnan(a),
            "tt": lambda a: a > 0,
            "u0": lambda a: np.isfinite(a),
        }
        allowed = {
            "kp": "finite",
            "ti": "> 0 s (inf for no integral action)",
            "td": "finite and >= 0 s",
            "n": "finite and > 0",
            "b": "finite",
            "u_lo": "a number (-inf allowed)",
            "u_hi": "a number (inf allowed)",
            "tt": "> 0 s",
            "u0": "finite",
        }
        for k, arr in vecs.items():
            if not np.all(checks[k](arr)):
                raise ConfigError(
                    f"PID parameter {k!r}={arr.tolist()} is invalid: must be {allowed[k]}"
                )
        if np.any(np.broadcast_to(vecs["u_lo"], max(sizes | {1})) > vecs["u_hi"]):
            raise ConfigError("PID 'u_lo' must be <= 'u_hi' on every channel")
        self._fixed_n = next(iter(sizes)) if sizes else None

    def _resolve(self, nch: int) -> None:
        """Broadcast every parameter to ``nch`` channels and derive coefficients.

        The coefficients are computed once here (with numpy) and kept as lists
        of floats, one per channel, for the per-channel update in :meth:`step`.
        """
        h = float(self.dt)
        p = {
            k: np.broadcast_to(_as_vec(k, getattr(self, k)), nch).copy()
            for k in _PARAMS
            if getattr(self, k) is not None
        }
        kp, ti, td, n = p["kp"], p["ti"], p["td"], p["n"]
        bi = np.where(np.isinf(ti), 0.0, kp * h / np.where(np.isinf(ti), 1.0, ti))
        ad = td / (td + n * h)
        bd = kp * td * n / (td + n * h)
        if "tt" in p:
            tt = p["tt"]
        else:
            tt = np.where(td > 0, np.sqrt(ti * np.where(td > 0, td, 1.0)), ti)
        tt = np.maximum(tt, h)
        ar = np.where(np.isinf(tt), 0.0, h / np.where(np.isinf(tt), 1.0, tt))
        if not self.antiwindup:
            ar = np.zeros(nch)
        self._kp: list[float] = kp.tolist()
        self._b: list[float] = p["b"].tolist()
        self._lo: list[float] = p["u_lo"].tolist()
        self._hi: list[float] = p["u_hi"].tolist()
        self._bi: list[float] = bi.tolist()
        self._ad: list[float] = ad.tolist()
        self._bd: list[float] = bd.tolist()
        self._ar: list[float] = ar.tolist()
        self._nch = nch

    @property
    def n_cv(self) -> int | None:
        """Number of channels when fixed by list parameters, else ``None``."""
        return self._nch if self._nch is not None else self._fixed_n

    @property
    def n_mv(self) -> int | None:
        """Same as :attr:`n_cv` (one MV per CV)."""
        return self.n_cv

    # --------------------------------------------------------------- contract
    def reset(self, *, seed: int | None = None) -> dict[str, Any]:
        """Clear the state; the next ``step`` initialises it (bumplessly)."""
        self._ready = True
        self._state = {}
        self._pending = None
        self._nch = None
        if self._fixed_n is not None:
            self._resolve(self._fixed_n)
        return {"controller": "pid", "channels": self._fixed_n, "seed": seed}

    def _initial_u(self, obs: Observation | None, nch: int) -> list[float]:
        """Output to start from per channel (NaN: unknown, the integrator starts at 0)."""
        if self._pending is not None and len(self._pending) == nch:
            return [u if math.isfinite(u) else 0.0 for u in self._pending]
        if self.u0 is not None:
            return _floats(np.broadcast_to(_as_vec("u0", self.u0), nch))
        if obs is not None and obs.u_prev is not None:
            up = _floats(obs.u_prev)
            if len(up) == nch:
                return [u if math.isfinite(u) else math.nan for u in up]
        return [math.nan] * nch

    def _initialise(
        self, obs: Observation, y: list[float], sp: list[float], good: list[bool]
    ) -> None:
        """First step after ``reset``: start each channel from its initial output."""
        u_init = self._initial_u(obs, len(y))
        st: dict[str, list[float]] = {k: [] for k in ("i", "d", "y", "sp", "p", "v", "u")}
        for k, ok in enumerate(good):
            p0 = self._kp[k] * (self._b[k] * sp[k] - y[k]) if ok else 0.0
            ui = u_init[k]
            integ = ui - p0 if math.isfinite(ui) else 0.0
            u = _clip(ui if math.isfinite(ui) else 0.0, self._lo[k], self._hi[k])
            st["i"].append(integ if math.isfinite(integ) else 0.0)
            st["d"].append(0.0)
            st["y"].append(y[k] if ok else math.nan)
            st["sp"].append(sp[k] if ok else math.nan)
            st["p"].append(p0)
            st["u"].append(u)
            st["v"].append(u)
        self._state = st

    def step(self, observation: Observation) -> Action:
        """One PID update; a non-finite ``y`` or ``sp`` holds that channel's output."""
        if not self._ready:
            raise NotFittedError("PIDController.step called before reset()")
        y_in = _floats(observation.y)
        sp_in = _floats(observation.sp)
        nch = self._nch if self._nch is not None else len(y_in)
        if len(y_in) != nch or len(sp_in) != nch or nch == 0:
            u_prev = self._state.get("u")
            u_hold = np.array(u_prev, dtype=np.float64) if u_prev is not None else np.zeros(nch)
            return Action(
                u_hold,
                {
                    "fallback": f"shape: expected {nch} values of y and sp, "
                    f"got {len(y_in)} and {len(sp_in)}"
                },
            )
        if self._nch is None:
            self._resolve(nch)
        good = [math.isfinite(y) and math.isfinite(sp) for y, sp in zip(y_in, sp_in, strict=True)]
        if not self._state:
            self._initialise(observation, y_in, sp_in, good)
        st = self._state
        st_i, st_d, st_y, st_sp = st["i"], st["d"], st["y"], st["sp"]
        st_p, st_v, st_u = st["p"], st["v"], st["u"]
        saturated = False
        for k in range(nch):
            if not good[k]:
                continue  # a bad channel keeps its state and its previous output
            y, sp = y_in[k], sp_in[k]
            e = sp - y
            p = self._kp[k] * (self._b[k] * sp - y)
            dy = y - st_y[k] if math.isfinite(st_y[k]) else 0.0
            d = self._ad[k] * st_d[k] - self._bd[k] * dy
            v = p + st_i[k] + d
            u = _clip(v, self._lo[k], self._hi[k])
            st_i[k] = st_i[k] + self._bi[k] * e + self._ar[k] * (u - v)
            st_d[k], st_y[k], st_sp[k], st_p[k], st_v[k], st_u[k] = d, y, sp, p, v, u
            saturated = saturated or u != v
        info: dict[str, Any] = {
            "p": np.array(st_p, dtype=np.float64),
            "i": np.array(st_i, dtype=np.float64),
            "d": np.array(st_d, dtype=np.float64),
            "saturated": saturated,
        }
        if not all(good):
            bad = [k for k, ok in enumerate(good) if not ok]
            finite_y = all(math.isfinite(y) for y in y_in)
            what = "measurement" if not finite_y else "setpoint"
            info["fallback"] = f"non-finite {what} on channel(s) {bad}: holding previous output"
            info["fallback_channels"] = bad
        return Action(np.array(st_u, dtype=np.float64), info)

    def track(self, u_applied: FloatArray) -> None:
        """Back-calculate the integrator against the value actually applied.

        Adds ``(dt/tt) * (u_applied - u_out)`` so that, together with the
        internal clamp already taken in ``step``, the integrator sees
        ``(dt/tt) * (u_applied - v)``. Non-finite entries are ignored.
        """
        ua = _floats(u_applied)
        st = self._state
        if not st:
            self._pending = ua
            return
        st_i, st_u = st["i"], st["u"]
        if len(ua) != len(st_u):
            return
        for k, a in enumerate(ua):
            if math.isfinite(a):
                st_i[k] = st_i[k] + self._ar[k] * (a - st_u[k])
                st_u[k] = a

    def handover(self, u_applied: FloatArray) -> None:
        """Bumpless transfer: continue from ``u_applied`` (controller not in control).

        Sets the integrator so that ``P + I + D`` of the last step equals
        ``u_applied``: the next output differs from it only by what the
        measurement and setpoint do meanwhile.
        """
        ua = _floats(u_applied)
        st = self._state
        if not st:
            self._pending = ua
            return
        if len(ua) != len(st["u"]):
            return
        for k, a in enumerate(ua):
            if math.isfinite(a):
                st["i"][k] = a - st["p"][k] - st["d"][k]
                st["u"][k] = a
                st["v"][k] = a

    def set_params(self, **params: Any) -> None:
        """Change tuning (``kp``, ``ti``, ``td``, ``n``, ``b``, ``u_lo``, ``u_hi``, ``tt``).

        Bumpless: the integrator is re-initialised so that the output at the
        last measurement is unchanged.
        """
        unknown = set(params) - set(_PARAMS)
        if unknown:
            raise ConfigError(
                f"unknown PID parameter(s) {sorted(unknown)}; allowed: {', '.join(_PARAMS)}",
            )
        old = {k: getattr(self, k) for k in params}
        for k, v in params.items():
            setattr(self, k, v)
        try:
            self._validate()
        except ConfigError:
            for k, v in old.items():
                setattr(self, k, v)
            raise
        st = self._state
        if self._nch is None:
            return
        self._resolve(self._nch)
        if st:
            for ch in range(self._nch):
                y, sp, p_old = st["y"][ch], st["sp"][ch], st["p"][ch]
                if math.isfinite(y) and math.isfinite(sp):
                    p_new = self._kp[ch] * (self._b[ch] * sp - y)
                else:
                    p_new = p_old
                st["i"][ch] = st["i"][ch] + p_old - p_new  # keeps P + I (hence the output)
                st["p"][ch] = p_new

    @classmethod
    def example(cls, workdir: Path) -> PIDController:
        """A small PI(D) heater loop for the contract checks."""
        return cls(2.0, 30.0, 2.0, dt=1.0, u_lo=0.0, u_hi=100.0)


__all__ = ["PIDController"]
