"""Chaos: ``autofab run`` is killed with SIGKILL mid-run, then the site is run again.

Acknowledged here means committed to the DuckDB historian file before the
kill (what the file holds when it is reopened after the kill). Samples still
in the runtime's memory at the kill (at most one flush interval, 1 s of wall
time by default) were never acknowledged and are gone with the process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from autofab.historian.duckdb import DuckDBHistorian
from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "examples" / "cstr.yaml"
SPEED = 50.0


def _rows(path: Path) -> list[tuple[str, float, float]]:
    """Every stored row, raw (no deduplication on read), after the historian reopened the file."""
    DuckDBHistorian(path).close()  # reopening replays the write-ahead log of a killed writer
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT t.path, epoch_us(s.ts), s.value FROM samples s JOIN tags t USING (tag_id) "
            "ORDER BY t.path, s.ts"
        ).fetchall()
    finally:
        con.close()
    return [(str(t), int(us) / 1e6, float("nan") if v is None else float(v)) for t, us, v in rows]


@pytest.mark.slow
def test_sigkill_mid_run_keeps_committed_samples_once_and_restart_continues(tmp_path):
    hist = tmp_path / "h.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [
        sys.executable, "-m", "autofab.cli", "run", str(SITE), "--for", "8h",
        "--speed", str(SPEED), "--historian", str(hist), "--quiet",
        "--report", str(tmp_path / "report.json"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not hist.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(3.0)  # a few flushes (1 s each) are committed by now
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()

    acked = _rows(hist)  # reopening replays the write-ahead log of the killed process
    assert len(acked) > 0
    last_acked = max(ts for _, ts, _ in acked)

    t0 = time.monotonic()
    site = load_site(SITE)
    rt = Runtime(
        site,
        RunSettings(duration_s=60.0, speed=SPEED, seed=0, historian_path=str(hist)),
        source=str(SITE),
    )
    report = asyncio.run(rt.run())
    restart_s = time.monotonic() - t0
    after = _rows(hist)

    keys = [(tag, ts) for tag, ts, _ in after]
    duplicated = len(keys) - len(set(keys))
    now = {(tag, ts): v for tag, ts, v in after}
    lost = [(t, ts) for t, ts, _ in acked if (t, ts) not in now]
    changed = [
        (t, ts)
        for t, ts, v in acked
        if (t, ts) in now and not (v == now[(t, ts)] or (v != v and now[(t, ts)] != now[(t, ts)]))
    ]
    new = [r for r in after if (r[0], r[1]) not in {(t, ts) for t, ts, _ in acked}]
    print(
        f"\nCHAOS runtime-sigkill: acknowledged={len(acked)} present={len(after) - len(new)} "
        f"lost={len(lost)} duplicated={duplicated} changed={len(changed)} "
        f"restart_rows={len(new)} restart_start_after_last_acked_s="
        f"{report['start_ts'] - last_acked:.1f} "
        f"recovery_s={restart_s:.2f} (restart to end of a 60 s run at speed {SPEED:g}; "
        f"kill to reopen {t0 - killed_at:.2f} s)"
    )
    assert not lost and duplicated == 0 and not changed
    assert len(new) > 0 and min(ts for _, ts, _ in new) > last_acked
    assert report["start_ts"] > last_acked
