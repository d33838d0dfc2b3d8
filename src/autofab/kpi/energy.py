"""Time-of-use tariffs: the price of energy at a timestamp."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autofab.errors import ConfigError
from autofab.site.base import TariffBand


class Tariff:
    """Daily time-of-use tariff in the site's local time.

    Parameters
    ----------
    bands : sequence of TariffBand
        Price per kWh from each ``start`` (HH:MM local) until the next band;
        the last band runs past midnight to the first. No bands: price 0.
    timezone : str
        IANA timezone of the site, e.g. ``Europe/Berlin``.
    """

    def __init__(self, bands: Sequence[TariffBand], timezone: str = "UTC") -> None:
        try:
            self.tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"unknown timezone {timezone!r}; use an IANA name such as 'Europe/Berlin'",
                field="site.timezone",
            ) from exc
        ordered = sorted(bands, key=lambda b: b.start)
        self._starts = [int(b.start[:2]) * 60 + int(b.start[3:]) for b in ordered]
        self._prices = [b.price_per_kwh for b in ordered]
        if len(set(self._starts)) != len(self._starts):
            raise ConfigError("two tariff bands start at the same time", field="kpi.tariff")

    def price(self, ts: float) -> float:
        """Price per kWh at UTC timestamp ``ts`` (s)."""
        if not self._prices:
            return 0.0
        local = datetime.fromtimestamp(ts, UTC).astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        i = bisect.bisect_right(self._starts, minute) - 1
        return self._prices[i]  # i == -1 wraps to the last band (past midnight)
