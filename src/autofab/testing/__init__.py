"""The public contract suite every plugin must pass (ships with the package).

Like scikit-learn's ``parametrize_with_checks`` and river's checks: for a plugin
class of a given kind, :func:`iter_checks` yields ``(name, check)`` pairs; each
check is a callable that raises ``AssertionError`` when the contract is broken.
``tests/contracts`` runs them over every plugin in :mod:`autofab.core.registry`,
so a new plugin is tested with no new test code.

Every registered plugin class provides ``example(workdir)``, a classmethod that
returns a small ready instance for these checks (``workdir`` is a fresh
temporary folder it may write to).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Check = tuple[str, Callable[[], None]]

CHECK_MODULES: dict[str, str] = {
    "twin": "autofab.testing.twin",
    "controller": "autofab.testing.controller",
    "historian": "autofab.testing.historian",
    "detector": "autofab.testing.detector",
    "scheduler": "autofab.testing.scheduler",
}


def has_checks(kind: str) -> bool:
    """Whether a check module exists for plugins of ``kind``."""
    name = CHECK_MODULES.get(kind)
    if name is None:
        return False
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return False
        raise
    return True


def iter_checks(kind: str, plugin: Any, workdir: Path) -> Iterator[Check]:
    """Yield the contract checks of ``plugin`` (a class) for its ``kind``."""
    module = importlib.import_module(CHECK_MODULES[kind])
    yield from module.checks(plugin, workdir)


__all__ = ["CHECK_MODULES", "Check", "has_checks", "iter_checks"]
