"""Readers for job-shop text, ``.fjs`` flexible job-shop and JSON problems; JSON export.

Formats
-------
jobshop
    First line ``n_jobs n_machines``; then one line per job of ``machine duration``
    pairs, machines 0-based (Taillard, Lawrence, Fisher-Thompson, ...).
fjs
    First line ``n_jobs n_machines [average alternatives]``; then one line per job:
    ``n_ops`` and, for each operation, ``n_alternatives`` followed by that many
    ``machine duration`` pairs, machines 1-based (Brandimarte, Hurink, ...).
json
    The :class:`~autofab.plan.base.Problem` model as JSON.

Both text formats often end in ``.txt``: :func:`detect_format` tells them apart
from the content. Lines starting with ``#`` and blank lines are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from autofab.errors import ConfigError
from autofab.plan.base import Job, Mode, Operation, Problem, Schedule

Format = Literal["jobshop", "fjs", "json"]
FORMATS: tuple[str, ...] = ("jobshop", "fjs", "json")


def _lines(text: str) -> list[tuple[int, list[str]]]:
    """Non-blank, non-comment lines as ``(1-based line number, tokens)``."""
    out = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((i, line.split()))
    return out


def _int(tok: str, source: str, line: int, what: str) -> int:
    try:
        value = int(tok)
    except ValueError:
        raise ConfigError(
            f"{what} must be an integer, got {tok!r}", source=source, line=line
        ) from None
    if value < 0:
        raise ConfigError(f"{what} must be >= 0, got {value}", source=source, line=line)
    return value


def _looks_jobshop(lines: list[tuple[int, list[str]]]) -> bool:
    if not lines or len(lines[0][1]) != 2:
        return False
    try:
        n, m = int(lines[0][1][0]), int(lines[0][1][1])
    except ValueError:
        return False
    body = lines[1:]
    if len(body) < n or n <= 0 or m <= 0:
        return False
    for _, toks in body[:n]:
        if len(toks) % 2 or len(toks) > 2 * m:
            return False
        try:
            machines = [int(x) for x in toks[0::2]]
        except ValueError:
            return False
        if any(not 0 <= x < m for x in machines):
            return False
    return True


def detect_format(text: str) -> Format:
    """``"json"``, ``"jobshop"`` or ``"fjs"`` from the content of a problem file."""
    if text.lstrip().startswith("{"):
        return "json"
    lines = _lines(text)
    if lines and len(lines[0][1]) == 3:
        return "fjs"
    return "jobshop" if _looks_jobshop(lines) else "fjs"


def parse_jobshop(text: str, source: str = "<text>", name: str = "jobshop") -> Problem:
    """A classic job shop: one chain of ``(machine, duration)`` pairs per job."""
    lines = _lines(text)
    if not lines:
        raise ConfigError(
            "empty file; expected 'n_jobs n_machines' on the first line", source=source
        )
    ln, head = lines[0]
    if len(head) != 2:
        raise ConfigError(
            f"first line must be 'n_jobs n_machines', got {' '.join(head)!r}",
            source=source,
            line=ln,
        )
    n = _int(head[0], source, ln, "n_jobs")
    m = _int(head[1], source, ln, "n_machines")
    if n == 0 or m == 0:
        raise ConfigError("n_jobs and n_machines must be positive", source=source, line=ln)
    body = lines[1:]
    if len(body) < n:
        raise ConfigError(
            f"expected {n} job lines, found {len(body)}",
            source=source,
            line=body[-1][0] if body else ln,
        )
    jobs = []
    for j, (ln, toks) in enumerate(body[:n]):
        if len(toks) % 2 or not toks:
            raise ConfigError(
                f"job {j}: expected pairs 'machine duration', got {len(toks)} numbers",
                source=source,
                line=ln,
            )
        ops = []
        for k in range(0, len(toks), 2):
            mach = _int(toks[k], source, ln, "machine")
            if mach >= m:
                raise ConfigError(
                    f"job {j}: machine {mach} out of range; allowed 0..{m - 1}",
                    source=source,
                    line=ln,
                )
            dur = _int(toks[k + 1], source, ln, "duration")
            ops.append(Operation(modes=(Mode(machine=mach, duration=dur),)))
        jobs.append(Job(name=f"J{j}", operations=tuple(ops)))
    return Problem(name=name, machines=tuple(f"M{i}" for i in range(m)), jobs=tuple(jobs))


def parse_fjs(text: str, source: str = "<text>", name: str = "fjs") -> Problem:
    """A flexible job shop in the ``.fjs`` format (machines 1-based in the file)."""
    lines = _lines(text)
    if not lines:
        raise ConfigError(
            "empty file; expected 'n_jobs n_machines [avg]' on the first line", source=source
        )
    ln, head = lines[0]
    if len(head) not in (2, 3):
        raise ConfigError(
            f"first line must be 'n_jobs n_machines [avg alternatives]', got {' '.join(head)!r}",
            source=source,
            line=ln,
        )
    n = _int(head[0], source, ln, "n_jobs")
    m = _int(head[1], source, ln, "n_machines")
    if n == 0 or m == 0:
        raise ConfigError("n_jobs and n_machines must be positive", source=source, line=ln)
    body = lines[1:]
    if len(body) < n:
        raise ConfigError(
            f"expected {n} job lines, found {len(body)}",
            source=source,
            line=body[-1][0] if body else ln,
        )
    jobs = []
    for j, (ln, toks) in enumerate(body[:n]):
        vals = [_int(t, source, ln, "value") for t in toks]
        pos = 0

        def take(what: str, vals: list[int] = vals, ln: int = ln, j: int = j) -> int:
            nonlocal pos
            if pos >= len(vals):
                raise ConfigError(
                    f"job {j}: line ends early, expected {what}", source=source, line=ln
                )
            pos += 1
            return vals[pos - 1]

        n_ops = take("the number of operations")
        if n_ops == 0:
            raise ConfigError(f"job {j}: needs at least one operation", source=source, line=ln)
        ops = []
        for _ in range(n_ops):
            k = take("the number of alternatives")
            if k == 0:
                raise ConfigError(
                    f"job {j}: an operation needs at least one machine", source=source, line=ln
                )
            modes = []
            for _ in range(k):
                mach = take("a machine (1-based)")
                if not 1 <= mach <= m:
                    raise ConfigError(
                        f"job {j}: machine {mach} out of range; allowed 1..{m} (1-based)",
                        source=source,
                        line=ln,
                    )
                modes.append(Mode(machine=mach - 1, duration=take("a duration")))
            ops.append(Operation(modes=tuple(modes)))
        if pos != len(vals):
            raise ConfigError(
                f"job {j}: {len(vals) - pos} extra numbers after {n_ops} operations",
                source=source,
                line=ln,
            )
        jobs.append(Job(name=f"J{j}", operations=tuple(ops)))
    return Problem(name=name, machines=tuple(f"M{i + 1}" for i in range(m)), jobs=tuple(jobs))


def _validation_to_config(exc: ValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    field = ".".join(str(x) for x in err["loc"]) or None
    return ConfigError(
        f"{err['msg']} ({len(exc.errors())} error(s) in total)", source=source, field=field
    )


def parse_json(text: str, source: str = "<text>", name: str = "problem") -> Problem:
    """A :class:`Problem` from its JSON form."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", source=source, line=exc.lineno) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", source=source) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"invalid JSON: {str(exc)[:200]}", source=source) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "a JSON problem must be an object with 'machines' and 'jobs'", source=source
        )
    data.setdefault("name", name)
    try:
        return Problem.model_validate(data)
    except ValidationError as exc:
        raise _validation_to_config(exc, source) from None


def read_problem(path: str | Path, format: str | None = None) -> Problem:
    """Read a problem file; ``format`` forces ``jobshop``, ``fjs`` or ``json`` (else detected)."""
    p = Path(path)
    if format is not None and format not in FORMATS:
        raise ConfigError(
            f"unknown format {format!r}; allowed: {', '.join(FORMATS)}", source=str(p)
        )
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read problem file: {exc.strerror}", source=str(p)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"problem file is not UTF-8 text (byte {exc.start}); save it as UTF-8", source=str(p)
        ) from None
    fmt = format or detect_format(text)
    name = p.stem
    if fmt == "json":
        return parse_json(text, str(p), name)
    if fmt == "jobshop":
        return parse_jobshop(text, str(p), name)
    return parse_fjs(text, str(p), name)


def problem_to_json(problem: Problem) -> str:
    """The JSON form of a problem (read back by :func:`parse_json`)."""
    return problem.model_dump_json(indent=2, exclude_defaults=True)


def schedule_to_json(schedule: Schedule, problem: Problem | None = None) -> str:
    """A schedule as JSON; with ``problem``, machine and job names are added per assignment."""
    data = schedule.model_dump(mode="json")
    if problem is not None:
        for a in data["assignments"]:
            a["machine_name"] = problem.machines[a["machine"]]
            a["job_name"] = problem.jobs[a["job"]].name
    return json.dumps(data, indent=2)


def schedule_from_json(text: str, source: str = "<text>") -> Schedule:
    """A schedule from :func:`schedule_to_json` output."""
    try:
        data = json.loads(text)
        for a in data.get("assignments", []):
            a.pop("machine_name", None)
            a.pop("job_name", None)
        return Schedule.model_validate(data)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", source=source, line=exc.lineno) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", source=source) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"invalid JSON: {str(exc)[:200]}", source=source) from None
    except ValidationError as exc:
        raise _validation_to_config(exc, source) from None
