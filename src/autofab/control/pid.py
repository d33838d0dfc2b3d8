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
        self._state: dict[str, FloatArray] = {}
        self._pending: FloatArray | None = None

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
        """Broadcast every parameter to ``nch`` channels and derive coefficients."""
        h = float(self.dt)
        p = {
            k: np.broadcast_to(_as_vec(k, getattr(self, k)), nch).copy()
            for k in _PARAMS
            if getattr(self, k) is not None
        }
        kp, ti, td, n = p["kp"], p["ti"], p["td"], p["n"]
        self._kp, self._b = kp, p["b"]
        self._lo, self._hi = p["u_lo"], p["u_hi"]
        self._bi = np.where(np.isinf(ti), 0.0, kp * h / np.where(np.isinf(ti), 1.0, ti))
        self._ad = td / (td + n * h)
        self._bd = kp * td * n / (td + n * h)
        if "tt" in p:
            tt = p["tt"]
        else:
            tt = np.where(td > 0, np.sqrt(ti * np.where(td > 0, td, 1.0)), ti)
        tt = np.maximum(tt, h)
        self._ar = np.where(np.isinf(tt), 0.0, h / np.where(np.isinf(tt), 1.0, tt))
        if not self.antiwindup:
            self._ar = np.zeros(nch)
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

    def _initial_u(self, obs: Observation | None, nch: int) -> FloatArray:
        u = np.zeros(nch)
        if self._pending is not None and self._pending.size == nch:
            return np.where(np.isfinite(self._pending), self._pending, u)
        if self.u0 is not None:
            return np.broadcast_to(_as_vec("u0", self.u0), nch).astype(np.float64)
        if obs is not None and obs.u_prev is not None:
            up = np.asarray(obs.u_prev, dtype=np.float64).ravel()
            if up.size == nch:
                return np.where(np.isfinite(up), up, np.nan)
        return np.full(nch, np.nan)  # unknown: integrator starts at 0

    def step(self, observation: Observation) -> Action:
        """One PID update; a non-finite ``y`` or ``sp`` holds that channel's output."""
        if not self._ready:
            raise NotFittedError("PIDController.step called before reset()")
        y = np.asarray(observation.y, dtype=np.float64).ravel()
        sp = np.asarray(observation.sp, dtype=np.float64).ravel()
        nch = self._nch if self._nch is not None else y.size
        if y.size != nch or sp.size != nch or nch == 0:
            u_prev = self._state.get("u")
            u = u_prev.copy() if u_prev is not None else np.zeros(max(nch, 0))
            return Action(
                u,
                {
                    "fallback": f"shape: expected {nch} values of y and sp, "
                    f"got {y.size} and {sp.size}"
                },
            )
        if self._nch is None:
            self._resolve(nch)
        st = self._state
        good = np.isfinite(y) & np.isfinite(sp)
        if not st:
            u_init = self._initial_u(observation, nch)
            p0 = self._kp * (self._b * sp - y)
            integ = np.where(np.isfinite(u_init), u_init - np.where(good, p0, 0.0), 0.0)
            st.update(
                i=np.where(np.isfinite(integ), integ, 0.0),
                d=np.zeros(nch),
                y=np.where(good, y, np.nan),
                p=np.where(good, p0, 0.0),
                u=np.clip(np.where(np.isfinite(u_init), u_init, 0.0), self._lo, self._hi),
                v=np.zeros(nch),
                sp=np.where(good, sp, np.nan),
            )
            st["v"] = st["u"].copy()
        # bad channels are computed on zeros and discarded below
        y = np.where(good, y, 0.0)
        sp = np.where(good, sp, 0.0)
        e = sp - y
        p = self._kp * (self._b * sp - y)
        dy = np.where(np.isfinite(st["y"]), y - np.nan_to_num(st["y"]), 0.0)
        d = self._ad * st["d"] - self._bd * dy
        v = p + st["i"] + d
        u = np.clip(v, self._lo, self._hi)
        i_new = st["i"] + self._bi * e + self._ar * (u - v)
        # commit only the good channels; bad ones keep state and previous output
        st["i"] = np.where(good, i_new, st["i"])
        st["d"] = np.where(good, d, st["d"])
        st["y"] = np.where(good, y, st["y"])
        st["sp"] = np.where(good, sp, st["sp"])
        st["p"] = np.where(good, p, st["p"])
        st["v"] = np.where(good, v, st["v"])
        st["u"] = np.where(good, u, st["u"])
        info: dict[str, Any] = {
            "p": st["p"].copy(),
            "i": st["i"].copy(),
            "d": st["d"].copy(),
            "saturated": bool(np.any(good & (u != v))),
        }
        if not np.all(good):
            bad = [int(k) for k in np.flatnonzero(~good)]
            y_raw = np.asarray(observation.y, dtype=np.float64).ravel()
            what = "measurement" if not np.all(np.isfinite(y_raw)) else "setpoint"
            info["fallback"] = f"non-finite {what} on channel(s) {bad}: holding previous output"
            info["fallback_channels"] = bad
        return Action(st["u"].copy(), info)

    def track(self, u_applied: FloatArray) -> None:
        """Back-calculate the integrator against the value actually applied.

        Adds ``(dt/tt) * (u_applied - u_out)`` so that, together with the
        internal clamp already taken in ``step``, the integrator sees
        ``(dt/tt) * (u_applied - v)``. Non-finite entries are ignored.
        """
        ua = np.asarray(u_applied, dtype=np.float64).ravel()
        st = self._state
        if not st:
            self._pending = ua.copy()
            return
        if ua.size != st["u"].size:
            return
        ok = np.isfinite(ua)
        st["i"] = np.where(ok, st["i"] + self._ar * (ua - st["u"]), st["i"])
        st["u"] = np.where(ok, ua, st["u"])

    def handover(self, u_applied: FloatArray) -> None:
        """Bumpless transfer: continue from ``u_applied`` (controller not in control).

        Sets the integrator so that ``P + I + D`` of the last step equals
        ``u_applied``: the next output differs from it only by what the
        measurement and setpoint do meanwhile.
        """
        ua = np.asarray(u_applied, dtype=np.float64).ravel()
        st = self._state
        if not st:
            self._pending = ua.copy()
            return
        if ua.size != st["u"].size:
            return
        ok = np.isfinite(ua)
        st["i"] = np.where(ok, ua - st["p"] - st["d"], st["i"])
        st["u"] = np.where(ok, ua, st["u"])
        st["v"] = np.where(ok, ua, st["v"])

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
            ok = np.isfinite(st["y"]) & np.isfinite(st["sp"])
            p_new = np.where(ok, self._kp * (self._b * st["sp"] - st["y"]), st["p"])
            st["i"] = st["i"] + st["p"] - p_new  # keeps P + I (hence the output) unchanged
            st["p"] = p_new

    @classmethod
    def example(cls, workdir: Path) -> PIDController:
        """A small PI(D) heater loop for the contract checks."""
        return cls(2.0, 30.0, 2.0, dt=1.0, u_lo=0.0, u_hi=100.0)


__all__ = ["PIDController"]
