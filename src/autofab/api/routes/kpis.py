"""KPIs since the start of the run (OEE, yield, energy per unit, CO2 ...)."""

from __future__ import annotations

from fastapi import APIRouter

from autofab.api.deps import Ctx, Viewer
from autofab.api.routes._util import num
from autofab.api.schemas import KPIsOut

router = APIRouter(prefix="/api/kpis", tags=["KPIs"])


@router.get("")
async def kpis(ctx: Ctx, user: Viewer) -> KPIsOut:
    """KPIs of every unit; ``line`` names the unit that stands for the line."""
    rt = ctx.runtime
    units = rt.kpis_now() if hasattr(rt, "kpis_now") else {}
    kcfg = getattr(getattr(rt, "site", None), "kpi", None)
    line = getattr(kcfg, "line", None) or next(iter(units), None)
    return KPIsOut(
        ts=ctx.runtime_ts() or 0.0,
        line=line,
        units={u: {k: num(v) for k, v in vals.items()} for u, vals in units.items()},
    )
