"""Chaos: a private PostgreSQL is stopped and started while the historian ingests.

Every sample ``append`` accepted (acknowledged) before, during and after the
outage is stored exactly once after recovery, with its value.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from chaos_support import PrivatePostgres

from autofab.core.base import Sample

psycopg = pytest.importorskip("psycopg")

from autofab.historian.postgres import PostgresHistorian  # noqa: E402

TAGS = [f"plant/area/line/cell{k}/temperature" for k in range(4)]
T0 = 1767592800.0


@pytest.fixture(scope="module")
def pg():
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_stop_start_mid_ingest_loses_and_duplicates_nothing(pg, tmp_path, mode):
    """Stop PostgreSQL (clean ``fast`` or crash-like ``immediate``) mid-stream, then start it."""
    h = PostgresHistorian(  # a fresh cluster per module and a table per mode
        pg.dsn,
        table=f"chaos_{mode}",
        flush_interval_s=0.02,
        buffer_path=tmp_path / "held.sqlite",
        connect_timeout_s=1.0,
    )
    marks: dict[str, float] = {}
    errors: list[BaseException] = []

    def fault() -> None:
        try:
            time.sleep(0.6)
            marks["stop"] = time.monotonic()
            pg.stop(mode)
            marks["stopped"] = time.monotonic()
            time.sleep(1.0)
            marks["start"] = time.monotonic()
            pg.start()
            marks["started"] = time.monotonic()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    chaos = threading.Thread(target=fault)
    acked: list[Sample] = []
    held_max = 0
    i = 0
    chaos.start()
    recovered_at = None
    # Stream until the server is back and the held samples are forwarded (plus a tail).
    while True:
        batch = [Sample(t, T0 + i * 0.1, float(i) + 0.25 * k) for k, t in enumerate(TAGS)]
        assert h.append(batch) == len(batch)  # acknowledged: accepted by the historian
        acked.extend(batch)
        h.flush()
        held_max = max(held_max, len(h.buffer))
        i += 1
        if "started" in marks and recovered_at is None and len(h.buffer) == 0:
            recovered_at = time.monotonic()
        if recovered_at is not None and time.monotonic() - recovered_at > 0.3:
            break
        if time.monotonic() - marks.get("started", time.monotonic()) > 15:
            break
        time.sleep(0.003)
    chaos.join()
    assert not errors, errors
    assert recovered_at is not None, f"held samples never forwarded: {len(h.buffer)} records"
    h.close()
    assert h.outages > 0 and held_max > 0  # the outage really happened mid-stream

    check = psycopg.connect(pg.dsn)
    rows = check.execute(
        f"SELECT tag, extract(epoch FROM ts)::float8, value FROM chaos_{mode}"
    ).fetchall()
    check.close()
    stored = Counter((tag, round(ts, 3)) for tag, ts, _ in rows)
    want = {(s.tag, round(s.ts, 3)): s.value for s in acked}
    lost = set(want) - set(stored)
    duplicated = [k for k, n in stored.items() if n > 1]
    extra = set(stored) - set(want)
    print(
        f"\nCHAOS postgres-{mode}: acknowledged={len(acked)} present={len(rows)} "
        f"lost={len(lost)} duplicated={len(duplicated)} held_max_records={held_max} "
        f"down_s={marks['start'] - marks['stop']:.2f} "
        f"recovery_s={recovered_at - marks['started']:.2f} (server start to buffer empty)"
    )
    assert not lost and not duplicated and not extra
    assert len(rows) == len(acked)
    for tag, ts, value in rows:
        assert value == want[(tag, round(ts, 3))]
