"""Statistical process control on quality tags: Shewhart, EWMA, CUSUM; run rules; Cp, Cpk.

Charts are streaming: :meth:`Chart.update` takes one value and returns the
rules it breaks, so they run sample by sample inside the runtime;
:meth:`Chart.check` runs a whole series. Centre ``mu0`` and ``sigma`` are
given or estimated from phase-I data with :meth:`Chart.fit` (sigma from the
average moving range, ``MR/1.128``, robust to drifts; Montgomery 2019, ch. 6).

- Shewhart individuals: limits ``mu0 +- 3 sigma``; zones A/B/C feed the
  Western Electric rules WE1..WE4 and the Nelson rules N1..N8.
- EWMA: ``z_t = lam x_t + (1 - lam) z_{t-1}``, limits
  ``mu0 +- L sigma sqrt(lam / (2 - lam) (1 - (1 - lam)^{2t}))``.
- Tabular CUSUM: ``C+_t = max(0, x_t - (mu0 + k sigma) + C+_{t-1})`` and the
  mirror ``C-``; alarm when either exceeds ``h sigma``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from autofab.errors import ConfigError
from autofab.monitor.base import ChartViolation

WE_TEXT = {
    "WE1": "1 point beyond 3 sigma",
    "WE2": "2 of 3 points beyond 2 sigma, same side",
    "WE3": "4 of 5 points beyond 1 sigma, same side",
    "WE4": "8 points in a row on one side of the centre",
}
NELSON_TEXT = {
    "N1": "1 point beyond 3 sigma",
    "N2": "9 points in a row on one side of the centre",
    "N3": "6 points in a row steadily increasing or decreasing",
    "N4": "14 points in a row alternating up and down",
    "N5": "2 of 3 points beyond 2 sigma, same side",
    "N6": "4 of 5 points beyond 1 sigma, same side",
    "N7": "15 points in a row within 1 sigma",
    "N8": "8 points in a row beyond 1 sigma, either side",
}
RULE_SETS = ("western_electric", "nelson", "none")


def estimate_sigma(x: ArrayLike) -> float:
    """Short-term sigma from the average moving range (``MR-bar / d2``, ``d2 = 1.128``)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size < 2:
        raise ConfigError("need at least 2 values to estimate sigma")
    s = float(np.mean(np.abs(np.diff(a))) / 1.128)
    return s if s > 0 else float(np.std(a)) or 1e-12


def capability(
    x: ArrayLike, lsl: float | None = None, usl: float | None = None
) -> dict[str, float]:
    """Process capability ``Cp = (USL - LSL) / 6 s`` and ``Cpk = min(USL - m, m - LSL) / 3 s``.

    ``s`` is the overall sample standard deviation (so these are strictly
    Pp/Ppk for long records); a one-sided specification gives only Cpk.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size < 2:
        raise ConfigError("need at least 2 finite values for Cp/Cpk")
    if lsl is None and usl is None:
        raise ConfigError("give lsl, usl or both for Cp/Cpk")
    m, s = float(a.mean()), float(a.std(ddof=1))
    s = s if s > 0 else 1e-12
    out: dict[str, float] = {"mean": m, "std": s}
    sides = []
    if usl is not None:
        sides.append((usl - m) / (3 * s))
    if lsl is not None:
        sides.append((m - lsl) / (3 * s))
    out["cpk"] = float(min(sides))
    if lsl is not None and usl is not None:
        out["cp"] = float((usl - lsl) / (6 * s))
    return out


class Chart:
    """Base of streaming control charts.

    Parameters
    ----------
    mu0 : float, optional
        In-control centre (estimated by :meth:`fit` when not given).
    sigma : float, optional
        In-control standard deviation of one value.
    """

    name = "chart"

    def __init__(self, mu0: float | None = None, sigma: float | None = None) -> None:
        self.mu0 = mu0
        self.sigma = sigma
        self.n = 0

    def fit(self, x: ArrayLike) -> Chart:
        """Estimate ``mu0`` and ``sigma`` from phase-I (in-control) data."""
        a = np.asarray(x, dtype=np.float64).ravel()
        a = a[np.isfinite(a)]
        self.mu0 = float(a.mean()) if a.size else 0.0
        self.sigma = estimate_sigma(a)
        self.reset()
        return self

    def reset(self) -> None:
        """Forget the stream (keep ``mu0`` and ``sigma``)."""
        self.n = 0

    def _ready(self) -> tuple[float, float]:
        if self.mu0 is None or self.sigma is None or not self.sigma > 0:
            raise ConfigError(f"{self.name} chart needs mu0 and sigma > 0 (give them or call fit)")
        return float(self.mu0), float(self.sigma)

    def update(self, x: float) -> list[ChartViolation]:
        """Chart one value; return the rules it breaks."""
        raise NotImplementedError

    def check(self, x: ArrayLike) -> list[ChartViolation]:
        """Chart every value of ``x`` in order; return all violations."""
        out: list[ChartViolation] = []
        for v in np.asarray(x, dtype=np.float64).ravel():
            out += self.update(float(v))
        return out

    def limits(self) -> dict[str, float]:
        """Current centre line and control limits."""
        raise NotImplementedError


def _count_same_side(zs: Sequence[float], k: float) -> int:
    up = sum(1 for z in zs if z > k)
    dn = sum(1 for z in zs if z < -k)
    return max(up, dn)


class ShewhartChart(Chart):
    """Individuals chart with Western Electric or Nelson run rules.

    Parameters
    ----------
    mu0, sigma : float, optional
        Centre and sigma (see :class:`Chart`).
    rules : str
        ``western_electric``, ``nelson`` or ``none`` (3-sigma limits only).
    """

    name = "shewhart"

    def __init__(
        self, mu0: float | None = None, sigma: float | None = None, rules: str = "western_electric"
    ) -> None:
        if rules not in RULE_SETS:
            raise ConfigError(f"unknown rules {rules!r}; allowed: {', '.join(RULE_SETS)}")
        super().__init__(mu0, sigma)
        self.rules = rules
        self._z: deque[float] = deque(maxlen=15)

    def reset(self) -> None:
        """Forget the stream."""
        super().reset()
        self._z = deque(maxlen=15)

    def limits(self) -> dict[str, float]:
        """Centre line and 3-sigma limits."""
        mu, s = self._ready()
        return {"center": mu, "lcl": mu - 3 * s, "ucl": mu + 3 * s}

    def update(self, x: float) -> list[ChartViolation]:
        """Chart one value; return the broken rules (each reported when it first fires)."""
        mu, s = self._ready()
        z = (x - mu) / s
        self._z.append(z)
        i = self.n
        self.n += 1
        zs = list(self._z)
        hits: list[str] = []
        if self.rules == "none":
            hits = ["WE1"] if abs(z) > 3 else []
        elif self.rules == "western_electric":
            if abs(z) > 3:
                hits.append("WE1")
            if len(zs) >= 3 and abs(z) > 2 and _count_same_side(zs[-3:], 2) >= 2:
                hits.append("WE2")
            if len(zs) >= 5 and abs(z) > 1 and _count_same_side(zs[-5:], 1) >= 4:
                hits.append("WE3")
            if len(zs) >= 8 and _count_same_side(zs[-8:], 0) == 8:
                hits.append("WE4")
        else:
            hits = self._nelson(zs, z)
        text = WE_TEXT if self.rules != "nelson" else NELSON_TEXT
        return [ChartViolation(i, r, x, text[r]) for r in hits]

    @staticmethod
    def _nelson(zs: list[float], z: float) -> list[str]:
        hits: list[str] = []
        if abs(z) > 3:
            hits.append("N1")
        if len(zs) >= 9 and _count_same_side(zs[-9:], 0) == 9:
            hits.append("N2")
        if len(zs) >= 6:
            d = np.diff(zs[-6:])
            if np.all(d > 0) or np.all(d < 0):
                hits.append("N3")
        if len(zs) >= 14:
            d = np.sign(np.diff(zs[-14:]))
            if np.all(d != 0) and np.all(d[1:] * d[:-1] < 0):
                hits.append("N4")
        if len(zs) >= 3 and abs(z) > 2 and _count_same_side(zs[-3:], 2) >= 2:
            hits.append("N5")
        if len(zs) >= 5 and abs(z) > 1 and _count_same_side(zs[-5:], 1) >= 4:
            hits.append("N6")
        if len(zs) >= 15 and all(abs(v) < 1 for v in zs[-15:]):
            hits.append("N7")
        if len(zs) >= 8 and all(abs(v) > 1 for v in zs[-8:]):
            hits.append("N8")
        return hits


class EWMAChart(Chart):
    """Exponentially weighted moving average chart (Roberts 1959).

    Parameters
    ----------
    mu0, sigma : float, optional
        Centre and sigma of one value.
    lam : float
        Weight of the newest value, 0 < lam <= 1.
    L : float
        Width of the limits in EWMA standard deviations.
    """

    name = "ewma"

    def __init__(
        self, mu0: float | None = None, sigma: float | None = None, lam: float = 0.2, L: float = 3.0
    ) -> None:
        if not 0 < lam <= 1:
            raise ConfigError(f"EWMA lam must be in (0, 1], got {lam}")
        super().__init__(mu0, sigma)
        self.lam = lam
        self.L = L
        self.z: float | None = None

    def reset(self) -> None:
        """Forget the stream."""
        super().reset()
        self.z = None

    def limits(self) -> dict[str, float]:
        """Centre line and the current (time-varying) limits."""
        mu, s = self._ready()
        t = max(self.n, 1)
        w = self.L * s * math.sqrt(self.lam / (2 - self.lam) * (1 - (1 - self.lam) ** (2 * t)))
        return {"center": mu, "lcl": mu - w, "ucl": mu + w}

    def update(self, x: float) -> list[ChartViolation]:
        """Chart one value."""
        mu, _ = self._ready()
        self.z = self.lam * x + (1 - self.lam) * (mu if self.z is None else self.z)
        i = self.n
        self.n += 1
        lim = self.limits()
        if not lim["lcl"] <= self.z <= lim["ucl"]:
            return [ChartViolation(i, "EWMA", self.z, "EWMA statistic beyond its limit")]
        return []


class CUSUMChart(Chart):
    """Tabular CUSUM (Page 1954) with reference ``k`` and decision interval ``h`` in sigmas.

    Parameters
    ----------
    mu0, sigma : float, optional
        Centre and sigma of one value.
    k : float
        Allowance, in sigmas (half the shift to detect quickly).
    h : float
        Decision interval, in sigmas.
    """

    name = "cusum"

    def __init__(
        self, mu0: float | None = None, sigma: float | None = None, k: float = 0.5, h: float = 5.0
    ) -> None:
        super().__init__(mu0, sigma)
        self.k = k
        self.h = h
        self.cp = 0.0
        self.cm = 0.0

    def reset(self) -> None:
        """Forget the stream."""
        super().reset()
        self.cp = 0.0
        self.cm = 0.0

    def limits(self) -> dict[str, float]:
        """Decision interval of the one-sided sums (in the value's unit)."""
        mu, s = self._ready()
        return {"center": mu, "h": self.h * s}

    def update(self, x: float) -> list[ChartViolation]:
        """Chart one value; the sums restart after a signal."""
        mu, s = self._ready()
        self.cp = max(0.0, self.cp + x - mu - self.k * s)
        self.cm = max(0.0, self.cm + mu - self.k * s - x)
        i = self.n
        self.n += 1
        out = []
        if self.cp > self.h * s:
            out.append(ChartViolation(i, "CUSUM+", self.cp, "upward shift"))
            self.cp = 0.0
        if self.cm > self.h * s:
            out.append(ChartViolation(i, "CUSUM-", self.cm, "downward shift"))
            self.cm = 0.0
        return out


CHARTS: dict[str, type[Chart]] = {"shewhart": ShewhartChart, "ewma": EWMAChart, "cusum": CUSUMChart}


def make_chart(kind: str, **params: Any) -> Chart:
    """A chart of ``kind`` (``shewhart``, ``ewma`` or ``cusum``)."""
    if kind not in CHARTS:
        raise ConfigError(f"unknown chart {kind!r}; allowed: {', '.join(CHARTS)}", field="chart")
    return CHARTS[kind](**params)
