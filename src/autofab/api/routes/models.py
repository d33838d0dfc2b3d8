"""Learned models from the runtime's registry (``runtime.models``), if it has one.

The registry offers ``versions(name)`` and ``metadata(name, version)`` (as
``autofab.learn.ModelRegistry``); names come from ``names()`` or the
sub-folders of its ``root``. The version in use comes from ``active(name)``
and is changed with ``activate(name, version)`` when the registry has them.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Path

from autofab.api.deps import Ctx, Engineer, Viewer
from autofab.api.routes._util import call_flexible, conflict, not_found
from autofab.api.schemas import ActivateIn, ModelOut, ModelVersionOut, WriteOut
from autofab.errors import ConfigError

router = APIRouter(prefix="/api/models", tags=["models"])
ModelName = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]


def _names(reg: Any) -> list[str]:
    if hasattr(reg, "names"):
        return sorted(reg.names())
    root = getattr(reg, "root", None)
    if root is None or not FsPath(root).is_dir():
        return []
    return sorted(p.name for p in FsPath(root).iterdir() if p.is_dir())


def _active(reg: Any, name: str) -> int | None:
    if hasattr(reg, "active"):
        v = reg.active(name)
        return None if v is None else int(v)
    vs = reg.versions(name)
    return int(vs[-1]) if vs else None


def model_out(reg: Any, name: str) -> ModelOut:
    """A model with its versions' metadata."""
    active = _active(reg, name)
    versions = []
    for v in reg.versions(name):
        meta = reg.metadata(name, v)
        versions.append(
            ModelVersionOut(
                name=name,
                version=int(v),
                kind=str(meta.get("class", meta.get("kind", ""))),
                created=str(meta.get("created", "")),
                active=int(v) == active,
                validation=dict(meta.get("validation", {})),
                data_window=dict(meta.get("data_window", {})),
            )
        )
    return ModelOut(name=name, active_version=active, versions=versions)


def _registry(ctx: Ctx) -> Any:
    return getattr(ctx.runtime, "models", None)


@router.get("")
async def list_models(ctx: Ctx, user: Viewer) -> list[ModelOut]:
    """Every model with its versions and validation figures (empty without a registry)."""
    reg = _registry(ctx)
    return [] if reg is None else [model_out(reg, n) for n in _names(reg)]


@router.get("/{name}")
async def get_model(name: ModelName, ctx: Ctx, user: Viewer) -> ModelOut:
    """One model."""
    reg = _registry(ctx)
    if reg is None or name not in _names(reg):
        raise not_found(f"no model {name!r}")
    return model_out(reg, name)


@router.put("/{name}/active")
async def activate(name: ModelName, body: ActivateIn, ctx: Ctx, user: Engineer) -> WriteOut:
    """Make a version the one in use (engineer or higher)."""
    reg = _registry(ctx)
    if reg is None or name not in _names(reg):
        raise not_found(f"no model {name!r}")
    if body.version not in reg.versions(name):
        raise not_found(f"model {name!r} has no version {body.version}")
    if not hasattr(reg, "activate"):
        raise conflict("this model registry cannot switch versions")
    old = _active(reg, name)
    try:
        call_flexible(reg.activate, name, body.version, user=user.name, reason=body.reason)
    except (ConfigError, ValueError) as exc:
        ctx.record(user, "model.activate", f"model:{name}", old, body.version, str(exc), False)
        raise conflict(str(exc)) from exc
    new = _active(reg, name)
    e = ctx.record(user, "model.activate", f"model:{name}", old, new, body.reason)
    return WriteOut(ok=True, audit_seq=e.seq, old=old, new=new)
