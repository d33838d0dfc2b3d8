"""Helpers shared by the routers."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, status


def num(v: Any) -> float | None:
    """``float(v)`` or None when missing or not finite."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def nums(v: Any) -> list[float | None]:
    """A list of :func:`num` from a scalar, a sequence or an array."""
    if v is None:
        return []
    if hasattr(v, "tolist"):
        v = v.tolist()
    if not isinstance(v, list | tuple):
        v = [v]
    return [num(x) for x in v]


def not_found(what: str) -> HTTPException:
    """404 with a message."""
    return HTTPException(status.HTTP_404_NOT_FOUND, what)


def unprocessable(what: str) -> HTTPException:
    """422 with a message."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, what)


def conflict(what: str) -> HTTPException:
    """409 with a message."""
    return HTTPException(status.HTTP_409_CONFLICT, what)


def call_flexible(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments its signature accepts."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})
