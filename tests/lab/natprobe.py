#!/usr/bin/env python3
"""Client side of the NAT lab checks; runs inside a site host namespace.

Talks to udp_observer.py in the "pub" namespace and prints one JSON object.

  natprobe.py mapping --dest IP:PORT [--dest IP:PORT ...]
      one socket, one whoami per destination, in order: the external ip:port per destination
  natprobe.py filter --dest IP:PORT --via IP:PORT [--via ...]
      learn the mapping at DEST, then ask the observer to send from each VIA socket to it:
      which ones get through the NAT
  natprobe.py loss --dest IP:PORT [--n N]
      N datagrams up (observer counts) and N down (observer floods): delivered shares
  natprobe.py punch --dest IP:PORT --me FILE --peer FILE [--predict K] [--duration S]
      learn the mapping, write it to FILE --me, wait for the peer's FILE, then both sides
      send to each other from the same socket: did a datagram from the peer arrive?

  natprobe.py classify [--obs1 IP] [--obs2 IP] [--port P] [--expect-... ...]
      mapping + filtering against two observer addresses, classified in RFC 4787 terms;
      exits 1 when an --expect-* value does not match

Every wait is bounded; nothing here blocks longer than a few seconds per step.
"""
import argparse
import json
import os
import socket
import sys
import time
import uuid


def hp(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def recv_json(sock, until):
    """Next JSON datagram before monotonic time `until`, or None."""
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return None, None
        sock.settimeout(left)
        try:
            data, src = sock.recvfrom(65535)
        except socket.timeout:
            return None, None
        try:
            return json.loads(data), src
        except ValueError:
            continue


def whoami(sock, dest, tries=5, wait=0.5):
    for attempt in range(tries):
        rid = uuid.uuid4().hex[:8]
        sock.sendto(json.dumps({"op": "whoami", "id": rid}).encode(), dest)
        until = time.monotonic() + wait
        while True:
            msg, _ = recv_json(sock, until)
            if msg is None:
                break
            if msg.get("op") == "you" and msg.get("id") == rid:
                return msg
    return None


def new_socket(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", port))
    return s


def cmd_mapping(a):
    s = new_socket(a.local_port)
    out = {"local_port": s.getsockname()[1], "mapped": []}
    for d in a.dest:
        m = whoami(s, hp(d))
        out["mapped"].append({"dest": d, "ip": m and m["ip"], "port": m and m["port"]})
    return out


def cmd_filter(a):
    s = new_socket(a.local_port)
    dest = hp(a.dest)
    m = whoami(s, dest)
    out = {"local_port": s.getsockname()[1], "dest": a.dest, "mapped": m and f"{m['ip']}:{m['port']}",
           "received": []}
    if m is None:
        return out
    got = set()
    for _ in range(a.tries):
        rid = uuid.uuid4().hex[:8]
        s.sendto(json.dumps({"op": "poke", "id": rid, "via": a.via}).encode(), dest)
        until = time.monotonic() + a.wait
        while True:
            msg, src = recv_json(s, until)
            if msg is None:
                break
            if msg.get("op") == "poked":
                got.add(msg["from"])
        if got >= set(a.via) - set(a.expect_missing or []):
            break
    out["received"] = sorted(got)
    return out


def cmd_loss(a):
    s = new_socket()
    dest = hp(a.dest)
    tag = uuid.uuid4().hex[:8]
    for i in range(a.n):
        s.sendto(json.dumps({"op": "data", "tag": tag, "seq": i}).encode(), dest)
        if i % 50 == 49:
            time.sleep(0.002)
    time.sleep(0.2)
    up = None
    for _ in range(40):  # the count request and its answer cross the lossy link too
        s.sendto(json.dumps({"op": "count", "tag": tag}).encode(), dest)
        msg, _ = recv_json(s, time.monotonic() + 0.2)
        if msg and msg.get("op") == "counted" and msg.get("tag") == tag:
            up = msg["n"]
            break
    seqs = set()
    started = False
    for _ in range(40):
        s.sendto(json.dumps({"op": "flood", "tag": tag, "n": a.n}).encode(), dest)
        msg, _ = recv_json(s, time.monotonic() + 0.2)
        if msg and msg.get("op") == "fdata" and msg.get("tag") == tag:
            seqs.add(msg["seq"])
            started = True
            break
    if started:
        hard = time.monotonic() + 5.0
        while time.monotonic() < hard:
            msg, _ = recv_json(s, time.monotonic() + 0.5)
            if msg is None:
                break
            if msg.get("op") == "fdata" and msg.get("tag") == tag:
                seqs.add(msg["seq"])
    return {"sent": a.n, "up": up, "down": len(seqs) if started else None}


def cmd_punch(a):
    s = new_socket(a.local_port)
    m = whoami(s, hp(a.dest))
    if m is None:
        return {"ok": False, "error": "no mapping from observer"}
    mine = {"ip": m["ip"], "port": m["port"]}
    tmp = a.me + ".tmp"
    with open(tmp, "w") as f:
        json.dump(mine, f)
    os.replace(tmp, a.me)
    deadline = time.monotonic() + a.wait_peer
    while not os.path.exists(a.peer):
        if time.monotonic() > deadline:
            return {"ok": False, "mine": mine, "error": "peer never published its mapping"}
        time.sleep(0.05)
    with open(a.peer) as f:
        peer = json.load(f)
    target = (peer["ip"], peer["port"] + a.predict)
    got_from = set()
    acked = False
    end = time.monotonic() + a.duration
    linger = None
    while time.monotonic() < end and (linger is None or time.monotonic() < linger):
        s.sendto(json.dumps({"op": "punch", "acked": bool(got_from)}).encode(), target)
        until = time.monotonic() + 0.05
        while True:
            msg, src = recv_json(s, until)
            if msg is None:
                break
            if msg.get("op") == "punch":
                got_from.add(f"{src[0]}:{src[1]}")
                acked = acked or msg.get("acked", False)
        if got_from and acked and linger is None:
            linger = time.monotonic() + 0.3  # let the peer see our "acked" too
    return {"ok": bool(got_from), "mine": mine, "peer": peer, "target": f"{target[0]}:{target[1]}",
            "received_from": sorted(got_from)}


def classify(a):
    o1, o2, p = a.obs1, a.obs2, a.port
    dests = [f"{o1}:{p}", f"{o1}:{p + 1}", f"{o2}:{p}", f"{o2}:{p + 1}", f"{o1}:{p + 2}", f"{o1}:{p + 3}"]
    ma = cmd_mapping(argparse.Namespace(dest=dests, local_port=0))
    ports = [m["port"] for m in ma["mapped"]]
    ips = sorted({m["ip"] for m in ma["mapped"] if m["ip"]})
    res = {"local_port": ma["local_port"], "ports": ports, "public": ",".join(ips) or None}
    if None in ports:
        res["mapping"] = "no-answer"
    elif len(set(ports)) == 1:
        res["mapping"] = "endpoint-independent"
    elif ports[0] == ports[1] and ports[2] == ports[3] and ports[0] != ports[2]:
        res["mapping"] = "address-dependent"
    else:
        res["mapping"] = "address-and-port-dependent"
    if None in ports:
        res["ports_pattern"] = "?"
    elif len(set(ports)) == 1:
        res["ports_pattern"] = "preserved" if ports[0] == ma["local_port"] else "same"
    else:
        deltas = [(b - c) for c, b in zip(ports, ports[1:])]
        if len(set(deltas)) == 1 and 0 < deltas[0] <= 4:
            res["ports_pattern"] = f"sequential{deltas[0]:+d}"
        else:
            res["ports_pattern"] = "random"
    via = [f"{o1}:{p}", f"{o1}:{p + 1}", f"{o2}:{p}", f"{o2}:{p + 1}"]
    fi = cmd_filter(argparse.Namespace(dest=f"{o1}:{p}", via=via, expect_missing=via[1:], local_port=0,
                                       tries=2, wait=0.4))
    got = set(fi["received"])
    res["filter_received"] = fi["received"]
    if via[0] not in got:
        res["filtering"] = "broken(no reply)"
    elif via[3] in got and via[2] in got and via[1] in got:
        res["filtering"] = "endpoint-independent"
    elif via[1] in got and not (via[2] in got or via[3] in got):
        res["filtering"] = "address-dependent"
    elif not (via[1] in got or via[2] in got or via[3] in got):
        res["filtering"] = "address-and-port-dependent"
    else:
        res["filtering"] = "odd:" + ",".join(sorted(got))
    return res


def cmd_classify(a):
    res = classify(a)
    bad = []
    for k in ("mapping", "filtering", "public"):
        want = getattr(a, "expect_" + k)
        if want is not None and res[k] != want:
            bad.append(f"{k}={res[k]} (expected {want})")
    if a.expect_ports is not None and not res["ports_pattern"].startswith(a.expect_ports):
        bad.append(f"ports={res['ports_pattern']} (expected {a.expect_ports})")
    res["ok"] = not bad
    res["problems"] = bad
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("mapping")
    p.add_argument("--dest", action="append", required=True)
    p.add_argument("--local-port", type=int, default=0)
    p = sub.add_parser("filter")
    p.add_argument("--dest", required=True)
    p.add_argument("--via", action="append", required=True)
    p.add_argument("--expect-missing", action="append")
    p.add_argument("--local-port", type=int, default=0)
    p.add_argument("--tries", type=int, default=2)
    p.add_argument("--wait", type=float, default=0.5)
    p = sub.add_parser("loss")
    p.add_argument("--dest", required=True)
    p.add_argument("--n", type=int, default=500)
    p = sub.add_parser("punch")
    p.add_argument("--dest", required=True)
    p.add_argument("--me", required=True)
    p.add_argument("--peer", required=True)
    p.add_argument("--predict", type=int, default=0)
    p.add_argument("--local-port", type=int, default=0)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--wait-peer", type=float, default=5.0)
    p = sub.add_parser("classify")
    p.add_argument("--obs1", default="203.0.113.10")
    p.add_argument("--obs2", default="203.0.113.11")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--expect-mapping")
    p.add_argument("--expect-filtering")
    p.add_argument("--expect-public")
    p.add_argument("--expect-ports", help="preserved, same, sequential or random (prefix match)")
    a = ap.parse_args()
    out = {"mapping": cmd_mapping, "filter": cmd_filter, "loss": cmd_loss, "punch": cmd_punch,
           "classify": cmd_classify}[a.cmd](a)
    print(json.dumps(out))
    return 0 if out.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
