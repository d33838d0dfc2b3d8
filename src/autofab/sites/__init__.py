"""Built-in site files, runnable by name (``autofab run cure_line``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from autofab.errors import ConfigError

DEFAULT_SITE = "ois_line"
"""The site ``autofab run`` runs when given none."""


def builtin_sites() -> list[str]:
    """Names of the site files shipped with autofab."""
    root = resources.files(__name__)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def site_path(name_or_path: str | None) -> Path:
    """Path of a site file given a path, a built-in site name, or None (the default)."""
    if name_or_path is None:
        name_or_path = DEFAULT_SITE
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError("site file not found", source=str(p))
        return p
    builtin = Path(str(resources.files(__name__).joinpath(f"{name_or_path}.yaml")))
    if builtin.exists():
        return builtin
    raise ConfigError(
        f"{name_or_path!r} is neither a site file nor a built-in site; built-in sites: "
        f"{', '.join(builtin_sites()) or 'none'}",
    )
