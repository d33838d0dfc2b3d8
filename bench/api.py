"""API and dashboard under load: 1,000 tags at 1 Hz and 50 WebSocket clients.

The server process runs what ``autofab serve`` runs (the cure-line twin at real
speed, the API, the stream hub) plus 1,000 synthetic tags published at 1 Hz on
the same bus. A second process opens 50 WebSocket clients subscribed to every
tag and polls the REST endpoints the dashboard polls. Reported: stream latency
(sample time to receipt), samples delivered per client against those published,
REST latency, and the server's event-loop lag and control deadline misses, each
against a limit.

    PYTHONPATH=$PWD/src /work/main/.venv/bin/python bench/api.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

N_TAGS, N_CLIENTS = 1000, 50
LIMITS = {
    "stream_p95_ms": 1000.0,
    "rest_p95_ms": 250.0,
    "loop_lag_p95_ms": 100.0,
    "delivered_ratio_min": 0.99,
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# ----- server process ---------------------------------------------------------
def server_main(port: int, seconds: float, tmp: str, out: Any) -> None:
    from autofab.api import ApiSettings, Role, create_app
    from autofab.api.server import make_server
    from autofab.core import Sample, Tag, TagKind
    from autofab.runtime import RunSettings, Runtime
    from autofab.site import load_site
    from autofab.sites import site_path

    cfg = load_site(site_path(None))
    rs = RunSettings(duration_s=seconds + 60, speed=1.0, historian_path=f"{tmp}/h.duckdb")
    rt = Runtime(cfg, rs, source="cure_line")
    extra = [f"{cfg.site.prefix}/bulk/cell{i // 100}/sensor{i:04d}" for i in range(N_TAGS)]
    for p in extra:
        rt.tags[p] = Tag(p, "1", -2.0, 2.0, TagKind.DV)
    rt.historian.register_tags(rt.tags.values())  # unregistered tags make DuckDB flushes slow
    app = create_app(ApiSettings(db_path=Path(tmp) / "auth.sqlite", scrypt_n=2**12), rt)
    app.state.ctx.users.add("bench", "bench-password", Role.VIEWER)
    token, _ = app.state.ctx.users.issue_token("bench", "api", "bench")
    (Path(tmp) / "token").write_text(token)
    server = make_server(app, "127.0.0.1", port)
    lags: list[float] = []
    published = [0]

    async def publisher() -> None:
        k = 0
        while True:
            ts = time.time()
            rt.bus.publish_many(Sample(p, ts, math.sin(0.1 * k + i)) for i, p in enumerate(extra))
            published[0] += len(extra)
            k += 1
            await asyncio.sleep(1.0 - (time.time() - ts))

    async def lag_probe() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            lags.append((time.perf_counter() - t - 0.05) * 1000)

    async def main() -> None:
        run = asyncio.create_task(rt.run())
        srv = asyncio.create_task(server.serve())
        pub = asyncio.create_task(publisher())
        probe = asyncio.create_task(lag_probe())
        while not (Path(tmp) / "done").exists():  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.2)
        server.should_exit = True
        for t in (run, pub, probe):
            t.cancel()
        await asyncio.gather(srv, run, pub, probe, return_exceptions=True)
        rt.historian.close()
        hub = app.state.ctx.hub
        out.put(
            {
                "loop_lag_ms": lags,
                "published": published[0],
                "deadline_misses": rt.scheduler.deadline_misses,
                "hub_batches": hub.batches,
                "hub_samples": hub.samples_in,
            }
        )

    asyncio.run(main())


# ----- client process ---------------------------------------------------------
def client_main(port: int, seconds: float, tmp: str, out: Any) -> None:
    import httpx
    import websockets

    tok = Path(tmp) / "token"
    for _ in range(600):
        if tok.exists():
            break
        time.sleep(0.1)
    token = tok.read_text()
    url = f"ws://127.0.0.1:{port}/api/stream"

    async def ws_client(stats: dict[str, Any], until: float) -> None:
        async with websockets.connect(url, max_size=2**24, open_timeout=60) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token, "tags": ["#"]}))
            while time.time() < until:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, until - time.time()))
                except TimeoutError:
                    break
                now = time.time()
                msg = json.loads(raw)
                if msg["type"] == "samples" and stats["started"]:
                    rows = msg["samples"]
                    stats["n"] += len(rows)
                    stats["lat"].extend((now - r[1]) * 1000 for r in rows[::50])
                elif msg["type"] == "hello":
                    stats["started"] = True

    async def poller(lat: list[float], until: float) -> None:
        h = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers=h, timeout=60.0) as c:
            while time.time() < until:
                for path in ("/api/loops", "/api/kpis", "/api/alarms", "/api/status"):
                    t = time.perf_counter()
                    r = await c.get(path)
                    r.raise_for_status()
                    lat.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0.5)

    async def main() -> None:
        async with httpx.AsyncClient(timeout=2.0) as c:
            for _ in range(300):  # wait for the server (imports are slow on a busy machine)
                try:
                    if (await c.get(f"http://127.0.0.1:{port}/api/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # first samples
        t0 = time.time() + 2.0  # measure after the clients are connected
        until = t0 + seconds
        stats = [{"n": 0, "lat": [], "started": False} for _ in range(N_CLIENTS)]
        rest: list[float] = []
        tasks = [ws_client(s, until) for s in stats] + [poller(rest, until)]
        await asyncio.gather(*tasks)
        out.put(
            {
                "clients": [{"n": s["n"], "lat": s["lat"]} for s in stats],
                "rest_ms": rest,
                "window_s": until - (t0 - 2.0),
            }
        )

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    port = _port()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        q_srv, q_cli = ctx.Queue(), ctx.Queue()
        srv = ctx.Process(target=server_main, args=(port, args.seconds, tmp, q_srv))
        srv.start()
        cli = ctx.Process(target=client_main, args=(port, args.seconds, tmp, q_cli))
        cli.start()
        c = q_cli.get(timeout=args.seconds + 120)
        (Path(tmp) / "done").write_text("")
        s = q_srv.get(timeout=args.seconds + 120)
        cli.join(30)
        srv.join(30)
    lat = [x for cl in c["clients"] for x in cl["lat"]]
    per_client = [cl["n"] for cl in c["clients"]]
    expected = N_TAGS * args.seconds  # 1 Hz per synthetic tag over the window (lower bound)
    ratio = min(per_client) / expected
    res = {
        "tags": N_TAGS,
        "clients": N_CLIENTS,
        "seconds": args.seconds,
        "stream_p50_ms": pct(lat, 0.5),
        "stream_p95_ms": pct(lat, 0.95),
        "samples_per_client_min": min(per_client),
        "samples_per_client_expected": expected,
        "delivered_ratio_min": ratio,
        "rest_p50_ms": pct(c["rest_ms"], 0.5),
        "rest_p95_ms": pct(c["rest_ms"], 0.95),
        "rest_requests": len(c["rest_ms"]),
        "loop_lag_p95_ms": pct(s["loop_lag_ms"], 0.95),
        "loop_lag_max_ms": max(s["loop_lag_ms"]),
        "deadline_misses": s["deadline_misses"],
        "limits": LIMITS,
        "load_average_1m_at_end": os.getloadavg()[0],
        "cpu_cores": os.cpu_count(),
    }
    rows = [
        (
            "stream latency p50 / p95 (ms)",
            f"{res['stream_p50_ms']:.0f} / {res['stream_p95_ms']:.0f}",
            f"p95 <= {LIMITS['stream_p95_ms']:.0f}",
            res["stream_p95_ms"] / LIMITS["stream_p95_ms"],
        ),
        (
            "samples per client, min / expected",
            f"{min(per_client)} / {expected:.0f}",
            f">= {LIMITS['delivered_ratio_min']:.2f}",
            LIMITS["delivered_ratio_min"] / max(ratio, 1e-9),
        ),
        (
            "REST latency p50 / p95 (ms)",
            f"{res['rest_p50_ms']:.1f} / {res['rest_p95_ms']:.1f}",
            f"p95 <= {LIMITS['rest_p95_ms']:.0f}",
            res["rest_p95_ms"] / LIMITS["rest_p95_ms"],
        ),
        (
            "server loop lag p95 / max (ms)",
            f"{res['loop_lag_p95_ms']:.1f} / {res['loop_lag_max_ms']:.1f}",
            f"p95 <= {LIMITS['loop_lag_p95_ms']:.0f}",
            res["loop_lag_p95_ms"] / LIMITS["loop_lag_p95_ms"],
        ),
        (
            "control deadline misses",
            str(s["deadline_misses"]),
            "0",
            0.0 if not s["deadline_misses"] else math.inf,
        ),
    ]
    print(f"autofab API: {N_TAGS} tags at 1 Hz, {N_CLIENTS} WebSocket clients, {args.seconds:g} s")
    print(f"{'measure':38} {'value':>18} {'limit':>12} {'ratio':>7}  ok")
    for name, val, lim, r in rows:
        print(f"{name:38} {val:>18} {lim:>12} {r:7.2f}  {'yes' if r <= 1.0 else 'NO'}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "api.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    print(f"saved {out / 'api.json'}")


if __name__ == "__main__":
    main()
