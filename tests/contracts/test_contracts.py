"""Run the shipped contract suite over every registered plugin."""

from __future__ import annotations

import pytest

from autofab.core import registry
from autofab.testing import has_checks, iter_checks


def _plugins():
    for kind in registry.KINDS:
        if not has_checks(kind):
            continue
        for name in registry.names(kind):
            yield pytest.param(kind, name, id=f"{kind}-{name}")


@pytest.mark.parametrize(("kind", "name"), list(_plugins()))
def test_plugin_contract(kind, name, tmp_path):
    plugin = registry.load(kind, name)
    ran = []
    for check_name, check in iter_checks(kind, plugin, tmp_path):
        try:
            check()
        except AssertionError as exc:
            raise AssertionError(f"{kind} {name!r} fails check {check_name}: {exc}") from exc
        ran.append(check_name)
    assert ran, f"no contract checks ran for {kind} {name!r}"
