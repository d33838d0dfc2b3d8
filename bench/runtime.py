"""Wall time of the default site's 8-hour shift against the 60 s limit.

Usage: ``python bench/runtime.py [--site NAME] [--hours 8] [--repeat 1]``.
Prints a table and writes ``bench/results/runtime.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site
from autofab.sites import DEFAULT_SITE, site_path

LIMIT_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--site", default=DEFAULT_SITE)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    path = site_path(args.site)
    site = load_site(path)
    walls, report = [], {}
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            settings = RunSettings(
                duration_s=args.hours * 3600, seed=0, historian_path=f"{tmp}/h{i}.duckdb"
            )
            rt = Runtime(site, settings, source=str(path))
            report = asyncio.run(rt.run())
            walls.append(rt.wall_s)
    wall = statistics.median(walls)
    scaled_limit = LIMIT_S * args.hours / 8.0
    result = {
        "site": args.site,
        "simulated_h": args.hours,
        "wall_s": wall,
        "limit_s": scaled_limit,
        "ratio_to_limit": wall / scaled_limit,
        "sim_seconds_per_wall_second": args.hours * 3600 / wall,
        "historian_rows": report["historian"]["rows"],
        "deadline_misses": report["deadline_misses"],
        "loops": len(report["loops"]),
    }
    head = ("site", "sim h", "wall s", "limit s", "ratio", "sim/wall", "rows")
    print("{:<12}{:>7}{:>9}{:>9}{:>7}{:>10}{:>10}".format(*head))
    print(
        f"{args.site:<12}{args.hours:>7g}{wall:>9.1f}{scaled_limit:>9.0f}"
        f"{wall / scaled_limit:>7.2f}{result['sim_seconds_per_wall_second']:>10.0f}"
        f"{result['historian_rows']:>10,}"
    )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "runtime.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
