"""Site description: pydantic schema and YAML loader."""

from autofab.site.base import (
    ConnectorConfig,
    FaultConfig,
    HistorianConfig,
    KPIConfig,
    KPIUnitConfig,
    LimitsConfig,
    LoopConfig,
    RunConfig,
    SiteConfig,
    SiteInfo,
    TagConfig,
    TariffBand,
    parse_duration,
)
from autofab.site.loader import load_site, parse_site

__all__ = [
    "ConnectorConfig",
    "FaultConfig",
    "HistorianConfig",
    "KPIConfig",
    "KPIUnitConfig",
    "LimitsConfig",
    "LoopConfig",
    "RunConfig",
    "SiteConfig",
    "SiteInfo",
    "TagConfig",
    "TariffBand",
    "load_site",
    "parse_duration",
    "parse_site",
]
