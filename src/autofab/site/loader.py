"""Load a YAML site file into :class:`SiteConfig`, with errors that point at lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autofab.errors import ConfigError
from autofab.site.base import SiteConfig

M = TypeVar("M", bound=BaseModel)


def validate_section(
    model: type[M], data: Any, field: str, source: str | None = None, what: str = "field"
) -> M:
    """Validate one section of a site file (a connector's options, ``plan:``, ...).

    Raises
    ------
    ConfigError
        Naming ``source`` and ``field.<sub-field>``, and what is allowed.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown {what}; allowed: {', '.join(sorted(model.model_fields))}"
        elif err["type"] == "missing":
            msg = f"required {what} is missing"
        raise ConfigError(msg, source=source, field=f"{field}.{loc}" if loc else field) from exc


def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def parse_site(text: str, source: str = "<string>") -> SiteConfig:
    """Parse and validate site YAML text.

    Raises
    ------
    ConfigError
        Naming ``source``, the line and the field, and what is allowed.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", source=source, line=line) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            "a site file must be a YAML mapping with at least 'site' and 'connectors'",
            source=source,
            line=1,
        )
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling against docs/site-file.md"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and err["type"] not in ("value_error",):
            msg = f"{msg} (got {err['input']!r})"
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more error{'s' if more > 1 else ''})"
        raise ConfigError(msg, source=source, line=_node_line(root, loc), field=field) from exc


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site file.

    Parameters
    ----------
    path : str or Path
        YAML file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("site file not found", source=str(p)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read site file: {exc}", source=str(p)) from exc
    return parse_site(text, source=str(p))
