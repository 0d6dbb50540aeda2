#!/usr/bin/env python3
"""What the congestion controller did, from a sender's qlog trace.

usage: qlog_cc.py TRACE.sqlog [...]

For each trace (QUIC_PORTAL_QLOG_DIR=DIR writes one per connection, see
README): packets sent and declared lost, how often the congestion window
went down (congestion events) and how far, whether it fell to the minimum
window (2 packets: RFC 9002 persistent congestion), its median and maximum,
the largest PTO count, and the window over time in 10 equal slices.
"""
import json
import statistics
import sys

MIN_WINDOW_PACKETS = 2  # RFC 9002 kMinimumWindow, in packets


def events(path):
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip().lstrip("\x1e")
            if not line.startswith("{"):
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue


def never_acked(sent_pns, ranges):
    """1-RTT packet numbers sent that no received ACK frame covers: lost
    (ngtcp2 0.12's qlog has no packet_lost event), or in flight at the end."""
    merged = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    count, k = 0, 0
    for pn in sorted(sent_pns):
        while k < len(merged) and merged[k][1] < pn:
            k += 1
        if k == len(merged) or pn < merged[k][0]:
            count += 1
    return count


def summarize(path):
    sent = lost = 0
    sent_pns, ranges = [], []
    sizes = []
    cwnds = []  # (time ms, cwnd bytes)
    pto = 0
    for e in events(path):
        name, data = e.get("name"), e.get("data", {})
        one_rtt = data.get("header", {}).get("packet_type") == "1RTT"
        if name == "transport:packet_received" and one_rtt:
            for fr in data.get("frames", []):
                for r in fr.get("acked_ranges", []) if fr.get("frame_type") == "ack" else []:
                    ranges.append((r[0], r[-1]))
        if name == "transport:packet_sent":
            sent += 1
            if one_rtt:
                sent_pns.append(data["header"].get("packet_number", -1))
            n = data.get("raw", {}).get("length")
            if n:
                sizes.append(n)
        elif name == "recovery:packet_lost":
            lost += 1
        elif name == "recovery:metrics_updated":
            if "congestion_window" in data:
                cwnds.append((e.get("time", 0), data["congestion_window"]))
            pto = max(pto, data.get("pto_count", 0))
    if lost == 0:
        lost = never_acked(sent_pns, ranges)
    if not cwnds:
        print(f"{path}: no congestion window in the trace")
        return
    mss = max(sizes) if sizes else 1200
    drops, depths, prev = 0, [], cwnds[0][1]
    for _, w in cwnds[1:]:
        if w < prev:
            drops += 1
            depths.append(w / prev)
        prev = w
    at_min = sum(1 for _, w in cwnds if w <= MIN_WINDOW_PACKETS * mss)
    values = [w for _, w in cwnds]
    t0, t1 = cwnds[0][0], cwnds[-1][0]
    slices = []
    for k in range(10):
        lo = t0 + (t1 - t0) * k / 10
        hi = t0 + (t1 - t0) * (k + 1) / 10
        part = [w for t, w in cwnds if lo <= t <= hi]
        slices.append(f"{statistics.median(part) / mss:.0f}" if part else "-")
    print(f"{path}:")
    print(f"  packets sent {sent}, never acknowledged {lost} ({100.0 * lost / max(sent, 1):.2f}%), "
          f"largest packet {mss} B, max PTO count {pto}")
    print(f"  window decreases {drops} ({drops / max(lost, 1):.2f} per lost packet), "
          f"median factor {statistics.median(depths) if depths else 1:.2f}; "
          f"updates at the minimum window: {at_min}")
    print(f"  window packets: median {statistics.median(values) / mss:.0f}, "
          f"max {max(values) / mss:.0f}; by tenth of the trace ({(t1 - t0) / 1000:.1f} s): "
          + " ".join(slices))


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    for path in sys.argv[1:]:
        summarize(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
