"""Gantt charts of a schedule: self-contained HTML (no extra package) and PNG (matplotlib)."""

from __future__ import annotations

import colorsys
import html
from pathlib import Path

from autofab.errors import ConfigError
from autofab.plan.base import Problem, Schedule


def _colour(j: int, n: int) -> str:
    r, g, b = colorsys.hls_to_rgb((j * 0.618034) % 1.0, 0.55, 0.55 if n > 1 else 0.5)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def gantt_html(problem: Problem, schedule: Schedule, title: str | None = None) -> str:
    """A standalone HTML page with an SVG Gantt chart (one row per machine).

    Bars are operations coloured by job (hover for job, operation, start and
    end); hatched grey bars are downtimes.
    """
    row_h, left, width = 26, 90, 1000
    horizon = max(
        [schedule.makespan, 1] + [d.end for d in problem.downtimes if d.start < schedule.makespan]
    )
    scale = width / horizon
    n_m, n_j = len(problem.machines), len(problem.jobs)
    height = row_h * n_m + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" fill="#999"/></pattern></defs>',
    ]
    for i, name in enumerate(problem.machines):
        y = i * row_h + 10
        parts.append(f'<text x="4" y="{y + 17}">{html.escape(name)}</text>')
        parts.append(
            f'<line x1="{left}" x2="{left + width}" y1="{y + row_h}" y2="{y + row_h}" '
            'stroke="#ddd"/>'
        )
    for d in problem.downtimes:
        if d.start >= horizon:
            continue
        x, w = left + d.start * scale, (min(d.end, horizon) - d.start) * scale
        y = d.machine * row_h + 12
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 4}" fill="url(#hatch)">'
            f"<title>{html.escape(d.reason)} [{d.start}, {d.end})</title></rect>"
        )
    for a in schedule.assignments:
        x, w = left + a.start * scale, max(0.5, (a.end - a.start) * scale)
        y = a.machine * row_h + 12
        job, mach = problem.jobs[a.job].name, problem.machines[a.machine]
        label = f"{job} op {a.op}: [{a.start}, {a.end}) on {mach}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 4}" '
            f'fill="{_colour(a.job, n_j)}" '
            f'stroke="#333" stroke-width="0.5"><title>{html.escape(label)}</title></rect>'
        )
        if w > 24:
            parts.append(f'<text x="{x + 2:.1f}" y="{y + 15}">{a.job}.{a.op}</text>')
    parts.append(f'<text x="{left}" y="{height - 6}">0</text>')
    parts.append(f'<text x="{left + width - 40}" y="{height - 6}">{horizon}</text>')
    parts.append("</svg>")
    t = html.escape(title or f"{problem.name}: makespan {schedule.makespan}")
    info = html.escape(
        f"solver {schedule.solver}, status {schedule.status}, objective {schedule.objective:g}, "
        f"lower bound {schedule.lower_bound:g}, tardiness {schedule.tardiness:g}, "
        f"energy cost {schedule.energy_cost:.2f}, {schedule.wall_s:.1f} s"
    )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{t}</title></head>"
        f"<body><h2>{t}</h2><p>{info}</p>{''.join(parts)}</body></html>\n"
    )


def write_gantt(problem: Problem, schedule: Schedule, path: str | Path) -> Path:
    """Write a Gantt chart to ``path``: ``.html`` (no extra package) or ``.png`` (matplotlib).

    Raises ``ConfigError`` for another suffix or when matplotlib is missing for PNG.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".html", ".htm"):
        p.write_text(gantt_html(problem, schedule), encoding="utf-8")
        return p
    if suffix != ".png":
        raise ConfigError(
            f"unknown Gantt chart type {p.suffix!r}; allowed: .html, .png", source=str(p)
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "PNG Gantt charts need matplotlib: pip install 'autofab[plan]' "
            "(or write .html instead)",
            source=str(p),
        ) from None
    n_m, n_j = len(problem.machines), len(problem.jobs)
    fig, ax = plt.subplots(figsize=(12, 0.4 * n_m + 1.5))
    for d in problem.downtimes:
        ax.barh(
            d.machine, d.end - d.start, left=d.start, color="#bbb", hatch="//", edgecolor="#777"
        )
    for a in schedule.assignments:
        ax.barh(
            a.machine,
            a.end - a.start,
            left=a.start,
            color=_colour(a.job, n_j),
            edgecolor="#333",
            linewidth=0.4,
        )
    ax.set_yticks(range(n_m), list(problem.machines))
    ax.invert_yaxis()
    ax.set_xlabel(f"time (units of {problem.time_unit_s:g} s)")
    ax.set_title(
        f"{problem.name}: makespan {schedule.makespan} ({schedule.solver}, {schedule.status})"
    )
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
