#!/usr/bin/env python3
"""Table of medians from bench/path_bench.sh's results.jsonl.

usage: path_summary.py RESULTS.jsonl [QUIC-OPTIONS-LABEL]

One block per scenario: bulk Gbit/s, pingpong p50 ms, 1-byte RTT p50 us,
QUIC and TCP medians with the number of runs, and QUIC/TCP. A bulk run that
timed out counts as its upper bound (bytes / timeout) and is marked "<".
"""
import json
import statistics
import sys

ROWS = [  # label, bench name in the JSON, key, digits
    ("bulk Gbit/s (1 MiB msgs)", "throughput", "gbit_per_s", 3),
    ("pingpong 600K/5K p50 ms", "pingpong", "p50_ms", 2),
    ("1-byte RTT p50 us", "rtt", "p50_us", 0),
]


def cell(runs, digits):
    ok = [r for r in runs if not r.get("failed")]
    failed = [r for r in runs if r.get("failed")]
    if not runs:
        return "n/a", None
    if len(failed) * 2 >= len(runs):  # the median is a failed run
        bound = [r.get("upper_gbit") for r in failed if "upper_gbit" in r]
        if bound and digits == 3:
            return f"<{min(bound):.3f} ({len(failed)}/{len(runs)} t/o)", None
        return f"fail ({len(failed)}/{len(runs)})", None
    vals = [r["value"] for r in ok] + [0.0 if digits == 3 else float("inf")] * len(failed)
    med = statistics.median(vals)
    return f"{med:.{digits}f}", med


def main():
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else "defaults"
    lines = [json.loads(x) for x in open(path) if x.strip()]
    scenarios, pings = [], {}
    for r in lines:
        sc = r.get("scenario")
        if sc and sc not in scenarios:
            scenarios.append(sc)
        if "ping_ms" in r:
            pings[sc] = r["ping_ms"]
    print()
    print(f"qp-bench between two namespaces, MTU 1500; QUIC options: {label}")
    hdr = f"{'scenario':<15}{'metric':<27}{'QUIC':>22}{'TCP':>22}{'QUIC/TCP':>10}"
    print(hdr)
    print("-" * len(hdr))
    for sc in scenarios:
        ping = pings.get(sc)
        name = sc
        for i, (label_, bench, key, digits) in enumerate(ROWS):
            cols = []
            for tr in ("quic", "tcp"):
                runs = []
                for r in lines:
                    if r.get("scenario") != sc or r.get("transport") != tr:
                        continue
                    if r.get("bench") != bench:
                        continue
                    if r.get("failed"):
                        runs.append(r)
                    elif key in r:
                        runs.append({"value": r[key]})
                cols.append(cell(runs, digits))
            (qs, q), (ts, t) = cols
            ratio = f"{q / t:.2f}x" if q is not None and t else "-"
            first = name if i == 0 else (f" ping {ping:.2f}ms" if i == 1 and ping else "")
            print(f"{first:<15}{label_:<27}{qs:>22}{ts:>22}{ratio:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
