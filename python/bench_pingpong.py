#!/usr/bin/env python3
"""Ping-pong benchmark of the quic_portal package, comparable with qp-bench.

The pattern quic-portal 0.1.x users quote: ITERS round trips of a 600 KiB
ping answered by a 5 KiB pong; latency from sending the ping to receiving
the whole pong. Prints one JSON object with the keys of
``qp-bench client --bench pingpong`` (bench, iterations, avg_ms, p50_ms,
p75_ms, p90_ms, p99_ms, min_ms, max_ms, ping_size, pong_size, transport,
connect_ms, lost_packets, cwnd, srtt_us, packets_sent, rss_kb, rss_peak_kb)
plus "implementation": "python".

Percentiles are sorted[int(n*q)], as in qp-bench.

    # against the C server (compare with qp-bench client against the same):
    qp-bench server --port 7000 --mode pingpong &
    python3 bench_pingpong.py client --host 127.0.0.1 --port 7000

    # a Python server, for a C or Python client:
    python3 bench_pingpong.py server --port 7000

    # both sides in Python, in two processes, on a free loopback port:
    python3 bench_pingpong.py local
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(HERE, "quic_portal")):
    sys.path.insert(0, HERE)  # the in-place build

import quic_portal  # noqa: E402
from quic_portal import Portal, QuicTransportOptions  # noqa: E402

PING_SIZE = 614400
PONG_SIZE = 5120
ITERS = 50
IO_TIMEOUT_MS = 120000


def pattern(n: int) -> bytes:
    """The bytes qp-bench sends: buf[i] = (i * 131 + 7) mod 256."""
    period = bytes((i * 131 + 7) & 0xFF for i in range(256))
    return (period * (n // 256 + 1))[:n]


def status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def pct(sorted_ms: list, q: float) -> float:
    return sorted_ms[min(int(len(sorted_ms) * q), len(sorted_ms) - 1)]


def options(cc: str) -> QuicTransportOptions:
    return QuicTransportOptions(congestion_controller_type=cc)


def run_client(host: str, port: int, iters: int, ping_size: int, pong_size: int,
               cc: str) -> dict:
    portal = Portal()
    t0 = time.perf_counter()
    portal.connect(host, port, 0, options(cc))
    connect_ms = (time.perf_counter() - t0) * 1e3
    ping = pattern(ping_size)
    ms = []
    for i in range(iters):
        t0 = time.perf_counter()
        portal.send(ping)
        pong = portal.recv(timeout_ms=IO_TIMEOUT_MS)
        ms.append((time.perf_counter() - t0) * 1e3)
        if pong is None:
            raise SystemExit(f"bench_pingpong: no pong {i + 1} within {IO_TIMEOUT_MS} ms")
        if len(pong) != pong_size:
            raise SystemExit(
                f"bench_pingpong: pong {i + 1} has {len(pong)} bytes, expected {pong_size} "
                "(is the server in pingpong mode with the same pong size?)"
            )
    stats = portal.stats()
    avg = sum(ms) / len(ms)
    ms.sort()
    result = {
        "bench": "pingpong",
        "iterations": iters,
        "avg_ms": round(avg, 3),
        "p50_ms": round(pct(ms, 0.5), 3),
        "p75_ms": round(pct(ms, 0.75), 3),
        "p90_ms": round(pct(ms, 0.9), 3),
        "p99_ms": round(pct(ms, 0.99), 3),
        "min_ms": round(ms[0], 3),
        "max_ms": round(ms[-1], 3),
        "ping_size": ping_size,
        "pong_size": pong_size,
        "transport": "quic",
        "connect_ms": round(connect_ms, 3),
        "lost_packets": stats["packets_lost"],
        "cwnd": stats["cwnd"],
        "srtt_us": stats["smoothed_rtt_us"],
        "packets_sent": stats["packets_sent"],
        "rss_kb": status_kb("VmRSS"),
        "rss_peak_kb": status_kb("VmHWM"),
        "implementation": "python",
        "version": quic_portal.__version__,
    }
    portal.close()
    return result


def run_server(port: int, pong_size: int, cc: str, ready_fd: int = -1) -> int:
    portal = Portal()
    pong = pattern(pong_size)
    print(f"bench_pingpong: pingpong server waiting on port {port}", file=sys.stderr,
          flush=True)
    if ready_fd >= 0:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    portal.listen(port, options(cc))
    served = 0
    while True:
        try:
            msg = portal.recv()
        except quic_portal.ConnectionError:
            break  # the client closed
        if msg is None:
            break
        portal.send(pong)
        served += 1
    print(f"bench_pingpong: client closed; served {served} messages", file=sys.stderr)
    portal.close()
    return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_local(args: argparse.Namespace) -> dict:
    port = free_port()
    r, w = os.pipe()
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "server", "--port", str(port),
         "--pong-size", str(args.pong_size), "--cc", args.cc, "--ready-fd", str(w)],
        pass_fds=(w,),
    )
    os.close(w)
    try:
        with os.fdopen(r) as f:
            if f.readline().strip() != "ready":
                raise SystemExit("bench_pingpong: the server did not start")
        time.sleep(0.05)  # the server's listen() binds right after it says ready
        return run_client("127.0.0.1", port, args.iters, args.ping_size, args.pong_size,
                          args.cc)
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="role", required=True)
    for name in ("client", "server", "local"):
        p = sub.add_parser(name)
        if name == "client":
            p.add_argument("--host", default="127.0.0.1")
        if name != "local":
            p.add_argument("--port", type=int, required=True)
        if name != "server":
            p.add_argument("--iters", type=int, default=ITERS)
            p.add_argument("--ping-size", type=int, default=PING_SIZE)
        p.add_argument("--pong-size", type=int, default=PONG_SIZE)
        p.add_argument("--cc", default="cubic")
        if name == "server":
            p.add_argument("--ready-fd", type=int, default=-1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "server":
        return run_server(args.port, args.pong_size, args.cc, args.ready_fd)
    if args.role == "client":
        result = run_client(args.host, args.port, args.iters, args.ping_size,
                            args.pong_size, args.cc)
    else:
        result = run_local(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
