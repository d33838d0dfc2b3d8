"""Interlocks: boolean expressions over tags that trip a loop to its safe value.

An interlock is TRUE when the process is unsafe ("trip"). Expressions are
parsed with :mod:`ast` against a whitelist, never ``eval``-ed. Allowed:

* numbers (``80``, ``1.5e3``);
* tag references: a bare identifier resolved through the loop's alias map
  (``temp``), or ``tag('site/area/line/cell/eq/signal')``;
* arithmetic ``+ - * /`` and unary ``- +``;
* comparisons ``< <= > >= == !=``, chained (``0 < x < 10``);
* ``and``, ``or``, ``not``;
* the functions ``abs(x)``, ``min(a, b, ...)``, ``max(a, b, ...)``.

Evaluation is fail-safe: if any referenced tag is missing or not finite, or
the arithmetic gives a non-finite value, the interlock trips and says why.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from autofab.core.base import validate_path
from autofab.errors import ConfigError

ALLOWED = (
    "numbers, tag references (an alias such as 'temp' or tag('site/area/line/cell/eq/signal')), "
    "+ - * /, comparisons < <= > >= == != (chaining allowed), and/or/not, abs(), min(), max()"
)

Process = Mapping[str, float]
_Eval = Callable[[Process], float]


class _NotFinite(Exception):
    """Raised during evaluation when a value is missing or not finite."""


_BIN: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_CMP: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max}


def _finite(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise _NotFinite(f"{what} is {x}")
    return x


@dataclass
class _Compiler:
    expr: str
    aliases: Mapping[str, str]
    tags: set[str] = field(default_factory=set)

    def fail(self, node: ast.AST | None, what: str) -> ConfigError:
        col = (
            f" at column {node.col_offset + 1}"
            if node is not None and hasattr(node, "col_offset")
            else ""
        )
        return ConfigError(f"interlock {self.expr!r}: {what}{col}; allowed: {ALLOWED}")

    def tag(self, path: str) -> _Eval:
        self.tags.add(path)

        def ev(p: Process) -> float:
            if path not in p:
                raise _NotFinite(f"tag {path} has no value")
            try:
                v = float(p[path])
            except (TypeError, ValueError):
                raise _NotFinite(f"tag {path} value {p[path]!r} is not a number") from None
            return _finite(v, f"tag {path}")

        return ev

    def compile(self, node: ast.AST) -> _Eval:
        if isinstance(node, ast.Expression):
            return self.compile(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise self.fail(node, f"constant {node.value!r} is not allowed")
            c = float(node.value)
            return lambda p: c
        if isinstance(node, ast.Name):
            if node.id not in self.aliases:
                known = ", ".join(sorted(self.aliases)) or "none defined"
                raise self.fail(node, f"unknown name {node.id!r} (known aliases: {known})")
            return self.tag(self.aliases[node.id])
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.keywords:
                raise self.fail(node, "only calls like tag('path'), abs(x), min(..), max(..)")
            fname = node.func.id
            if fname == "tag":
                if len(node.args) != 1 or not (
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                ):
                    raise self.fail(node, "tag() takes one quoted tag path")
                try:
                    path = validate_path(node.args[0].value)
                except ConfigError as exc:
                    raise self.fail(node, str(exc)) from None
                return self.tag(path)
            if fname not in _FUNCS:
                raise self.fail(node, f"function {fname!r} is not allowed")
            if not node.args or (fname == "abs" and len(node.args) != 1):
                raise self.fail(node, f"wrong number of arguments to {fname}()")
            fn = _FUNCS[fname]
            args = [self.compile(a) for a in node.args]
            return lambda p: _finite(float(fn(*(a(p) for a in args))), f"{fname}()")
        if isinstance(node, ast.BinOp):
            op = _BIN.get(type(node.op))
            if op is None:
                raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")
            left, right = self.compile(node.left), self.compile(node.right)

            def binop(p: Process) -> float:
                try:
                    return _finite(op(left(p), right(p)), "arithmetic")
                except ZeroDivisionError:
                    raise _NotFinite("division by zero") from None

            return binop
        if isinstance(node, ast.UnaryOp):
            operand = self.compile(node.operand)
            if isinstance(node.op, ast.USub):
                return lambda p: -operand(p)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.Not):
                return lambda p: float(not operand(p))
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.BoolOp):
            parts = [self.compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda p: float(all(f(p) for f in parts))
            return lambda p: float(any(f(p) for f in parts))
        if isinstance(node, ast.Compare):
            first = self.compile(node.left)
            ops = []
            for o in node.ops:
                cmp = _CMP.get(type(o))
                if cmp is None:
                    raise self.fail(node, f"comparison {type(o).__name__} is not allowed")
                ops.append(cmp)
            rest = [self.compile(c) for c in node.comparators]

            def compare(p: Process) -> float:
                a = first(p)
                for cmp, nxt in zip(ops, rest, strict=True):
                    b = nxt(p)
                    if not cmp(a, b):
                        return 0.0
                    a = b
                return 1.0

            return compare
        raise self.fail(node, f"{type(node).__name__} is not allowed")


@dataclass(frozen=True)
class Interlock:
    """A parsed interlock expression.

    Use :func:`parse_interlock` to build one. ``tags`` are the tag paths it
    reads; :meth:`evaluate` returns ``(tripped, reason)``.
    """

    expr: str
    tags: frozenset[str]
    _fn: _Eval = field(repr=False, compare=False)
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_order", tuple(sorted(self.tags)))

    def evaluate(self, process: Process) -> tuple[bool, str]:
        """Evaluate against the latest tag values; fail-safe (missing/NaN trips).

        Parameters
        ----------
        process : mapping of str to float
            Latest value of every tag, by path.
        """
        for path in self._order:
            v = process.get(path)
            try:
                ok = v is not None and math.isfinite(float(v))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                return True, f"interlock {self.expr!r} tripped (fail-safe): tag {path} is {v!r}"
        try:
            value = self._fn(process)
        except _NotFinite as exc:
            return True, f"interlock {self.expr!r} tripped (fail-safe): {exc}"
        if value:
            vals = ", ".join(f"{p}={float(process[p]):g}" for p in self._order)
            return True, f"interlock {self.expr!r} is true ({vals})"
        return False, ""


@dataclass(frozen=True)
class Trip:
    """A trip: an interlock that drives a second, independent final element.

    While ``interlock`` is true (fail-safe: also when a tag it reads is
    missing or not finite) the guard writes ``value`` to ``tag`` (a feed
    shut-off, a line stop) and puts the loop's MV to its safe value. A trip
    is latched: it stays until :meth:`SafetyGuard.reset_trips`, or, with
    ``release_s``, until the expression has been false that long; then
    ``normal`` (when given) is written again.
    """

    interlock: Interlock
    tag: str
    value: float
    normal: float | None = None
    release_s: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ConfigError(f"trip on {self.tag}: value={self.value} must be finite")
        if self.normal is not None and not math.isfinite(self.normal):
            raise ConfigError(f"trip on {self.tag}: normal={self.normal} must be finite")
        if self.release_s is not None and not (self.release_s >= 0):
            raise ConfigError(f"trip on {self.tag}: release_s={self.release_s} must be >= 0 s")


def parse_interlock(expr: str, aliases: Mapping[str, str] | None = None) -> Interlock:
    """Parse ``expr`` safely (whitelisted :mod:`ast` nodes only).

    Parameters
    ----------
    expr : str
        Expression that is true when the loop must trip.
    aliases : mapping of str to str, optional
        Bare names usable in ``expr`` and the tag path each stands for.

    Raises
    ------
    ConfigError
        Naming the expression and what is allowed.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"interlock {expr!r} is empty; allowed: {ALLOWED}")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(
            f"interlock {expr!r}: syntax error ({exc.msg}); allowed: {ALLOWED}"
        ) from None
    comp = _Compiler(expr, dict(aliases or {}))
    fn = comp.compile(tree)
    return Interlock(expr, frozenset(comp.tags), fn)


def parse_interlocks(
    exprs: Iterable[str | Interlock],
    aliases: Mapping[str, str] | None = None,
) -> tuple[Interlock, ...]:
    """Parse several expressions (already parsed ones pass through)."""
    return tuple(e if isinstance(e, Interlock) else parse_interlock(e, aliases) for e in exprs)


__all__ = ["ALLOWED", "Interlock", "Trip", "parse_interlock", "parse_interlocks"]
