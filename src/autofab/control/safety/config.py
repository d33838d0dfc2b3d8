"""Build guards and guarded loops from a site file's ``loops:`` entries."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autofab.control.base import Controller, FloatArray
from autofab.control.safety.base import LoopTags
from autofab.control.safety.envelope import Envelope
from autofab.control.safety.interlocks import Interlock, Trip, parse_interlocks
from autofab.core.base import Tag
from autofab.errors import ConfigError
from autofab.site.base import LoopConfig

if TYPE_CHECKING:
    from autofab.control.safety.guard import SafetyGuard


def _arr(v: Any) -> FloatArray:
    return np.atleast_1d(np.asarray(v, dtype=np.float64)).ravel().copy()


def _paths(
    written: Sequence[str] | None, resolved: Sequence[Tag] | None, count: int, what: str, field: str
) -> list[str] | None:
    """Tag paths of a per-signal list (resolved tags, else as written), one per signal."""
    if written is None:
        return None
    paths = [tg.path for tg in resolved] if resolved is not None else list(written)
    if len(paths) != count:
        raise ConfigError(f"has {len(paths)} entries; expected one {what} ({count})", field=field)
    return paths


def _expression(expr: str, names: Mapping[str, str], field: str) -> Interlock:
    """One interlock-syntax expression; a bad one raises ``ConfigError`` naming ``field``."""
    try:
        return parse_interlocks([expr], names)[0]
    except ConfigError as exc:
        raise ConfigError(exc.message, field=field) from None


def guard_from_loop_config(
    guard_cls: type[SafetyGuard],
    cfg: LoopConfig,
    mv_tags: Sequence[Tag],
    cv_tags: Sequence[Tag],
    aliases: Mapping[str, str],
    tags: LoopTags | None = None,
) -> SafetyGuard:
    """Build a guard (see :meth:`SafetyGuard.from_loop_config`).

    ``tags`` holds the resolved second transmitters, trip elements and
    readbacks (default: the paths as written in the site file).
    """
    tags = tags or LoopTags()
    redundant, trip_tags, readback = tags.redundant, tags.trips, tags.readback
    where = f"loops.{cfg.name}"
    n = len(mv_tags)
    if n == 0 or n != len(cfg.mv):
        raise ConfigError(
            f"{n} MV tag(s) resolved for {len(cfg.mv)} 'mv' entries", field=f"{where}.mv"
        )
    lim = cfg.limits

    def vec(name: str, v: Any, size: int, default: float) -> FloatArray:
        if v is None:
            return np.full(size, default)
        a = _arr(v)
        if a.size not in (1, size):
            raise ConfigError(
                f"has {a.size} entries; expected 1 or {size}", field=f"{where}.limits.{name}"
            )
        return np.broadcast_to(a, size).copy()

    tag_lo = np.array([tg.lo for tg in mv_tags], dtype=np.float64)
    tag_hi = np.array([tg.hi for tg in mv_tags], dtype=np.float64)
    lo = np.maximum(tag_lo, vec("mv_lo", lim.mv_lo, n, -math.inf))
    hi = np.minimum(tag_hi, vec("mv_hi", lim.mv_hi, n, math.inf))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        bad = [
            tg.path
            for tg, a, b in zip(mv_tags, lo, hi, strict=True)
            if not (math.isfinite(a) and math.isfinite(b))
        ]
        raise ConfigError(
            f"MV tag(s) {bad} have no finite range: give limits.mv_lo and "
            "limits.mv_hi (a guarded MV needs finite hard limits)",
            field=f"{where}.limits",
        )
    if np.any(lo > hi):
        raise ConfigError(
            f"limits [{lo.tolist()}, {hi.tolist()}] are empty after narrowing the MV tags' ranges",
            field=f"{where}.limits",
        )
    ncv = max(len(cv_tags), 1)
    env = Envelope(
        lo,
        hi,
        vec("mv_rate", lim.mv_rate, n, math.inf),
        vec("cv_lo", lim.cv_lo, ncv, -math.inf),
        vec("cv_hi", lim.cv_hi, ncv, math.inf),
    )
    red_paths = _paths(
        lim.cv_redundant,
        redundant,
        len(cv_tags),
        "second transmitter per cv",
        f"{where}.limits.cv_redundant",
    )
    rb_paths = _paths(
        lim.mv_readback, readback, n, "readback per mv", f"{where}.limits.mv_readback"
    )
    names: dict[str, str] = {}
    for tg in (*cv_tags, *mv_tags, *(redundant or ()), *(readback or ())):
        names.setdefault(tg.name, tg.path)
    names.update(aliases)
    rb_when = (
        None
        if lim.mv_readback_when is None
        else _expression(lim.mv_readback_when, names, f"{where}.limits.mv_readback_when")
    )
    trips: list[Trip] = []
    for i, tc in enumerate(cfg.trips):
        il = _expression(tc.when, names, f"{where}.trips.{i}")
        tag = trip_tags[i].path if trip_tags is not None else tc.tag
        try:
            trips.append(Trip(il, tag, tc.value, tc.normal, tc.release_s))
        except ConfigError as exc:
            raise ConfigError(exc.message, field=f"{where}.trips.{i}") from None
    ils = [
        _expression(expr, names, f"{where}.interlocks.{i}") for i, expr in enumerate(cfg.interlocks)
    ]
    try:
        return guard_cls(
            env,
            name=cfg.name,
            interlocks=ils,
            stale_after_s=lim.stale_after_s,
            hold_s=lim.hold_s,
            fallback=cfg.fallback,
            safe_value=cfg.safe_value,
            mode=cfg.mode,
            manual_value=cfg.manual_value,
            aliases=names,
            n_mv=n,
            y_lo=[tg.lo for tg in cv_tags] or None,
            y_hi=[tg.hi for tg in cv_tags] or None,
            period_s=cfg.period_s,
            frozen_after_s=lim.frozen_after_s,
            cv_step=None if lim.cv_step is None else vec("cv_step", lim.cv_step, ncv, 0.0),
            cv_rate=None if lim.cv_rate is None else vec("cv_rate", lim.cv_rate, ncv, 0.0),
            cv_redundant=red_paths,
            cv_discrepancy=None
            if lim.cv_discrepancy is None
            else vec("cv_discrepancy", lim.cv_discrepancy, ncv, 0.0),
            trips=trips,
            mv_readback=rb_paths,
            mv_readback_tol=None
            if lim.mv_readback_tol is None
            else vec("mv_readback_tol", lim.mv_readback_tol, n, 0.0),
            mv_readback_when=rb_when,
        )
    except ConfigError as exc:
        if exc.field:
            raise
        raise ConfigError(exc.message, field=where) from None


def build_controller(
    name: str,
    params: dict[str, Any],
    cfg: LoopConfig,
    guard: SafetyGuard,
    where: str,
    tags: tuple[Sequence[Tag], Sequence[Tag]] | None = None,
) -> Controller:
    """Instantiate controller ``name`` from the registry for loop ``cfg``.

    A controller class with ``from_loop_config(cfg, params, cv_tags, mv_tags,
    guard)`` builds itself (it needs more of the loop than its period and MV
    limits, e.g. a model-based controller); any other is called with
    ``params``, given ``dt``, ``u_lo`` and ``u_hi`` when it takes them.
    """
    from autofab.core import registry  # local: the registry imports plugins lazily

    try:
        factory = registry.load("controller", name)
    except ConfigError as exc:
        raise ConfigError(exc.message, field=f"loops.{cfg.name}.controller") from None
    if hasattr(factory, "from_loop_config") and tags is not None:
        try:
            built = factory.from_loop_config(cfg, params, tags[0], tags[1], guard)
        except ConfigError as exc:
            raise ConfigError(exc.message, field=exc.field or where) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"controller {name!r}: {exc}", field=where) from None
        if not isinstance(built, Controller):
            raise ConfigError(f"controller {name!r} built a {type(built).__name__}", field=where)
        return built
    try:
        sig = inspect.signature(factory)
        accepts = set(sig.parameters)
    except (TypeError, ValueError):
        accepts = set()
    if "dt" in accepts and "dt" not in params:
        params["dt"] = cfg.period_s
    lo, hi, _ = guard.envelope.bounds(guard.n)
    if "u_lo" in accepts and "u_lo" not in params:
        params["u_lo"] = lo.tolist() if guard.n > 1 else float(lo[0])
    if "u_hi" in accepts and "u_hi" not in params:
        params["u_hi"] = hi.tolist() if guard.n > 1 else float(hi[0])
    try:
        ctrl = factory(**params)
    except ConfigError as exc:
        raise ConfigError(exc.message, field=where) from None
    except TypeError as exc:
        raise ConfigError(f"controller {name!r}: {exc}", field=where) from None
    if not isinstance(ctrl, Controller):
        raise ConfigError(
            f"controller {name!r} built a {type(ctrl).__name__}, not a Controller", field=where
        )
    return ctrl


__all__ = ["build_controller", "guard_from_loop_config"]
