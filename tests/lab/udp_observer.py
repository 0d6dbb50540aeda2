#!/usr/bin/env python3
"""UDP observer for the NAT lab: tells each sender the source ip:port it saw.

Runs in the lab's "pub" namespace, listening on several address:port pairs
(e.g. 203.0.113.10 and 203.0.113.11, ports 5000-5007). Every datagram is a
JSON object; the reply goes out of the socket it arrived on unless said otherwise.

  {"op": "whoami", "id": X}
      -> {"op": "you", "id": X, "ip": SRC_IP, "port": SRC_PORT, "via": "IP:PORT"}
  {"op": "poke", "id": X, "via": ["IP:PORT", ...]}
      -> from each listed local socket, {"op": "poked", "id": X, "from": "IP:PORT"}
         to the observed source address (tests NAT filtering: unsolicited senders)
  {"op": "data", "tag": T, "seq": N}
      -> counted per tag, no reply
  {"op": "count", "tag": T}
      -> {"op": "counted", "tag": T, "n": distinct seqs seen for T}
  {"op": "flood", "tag": T, "n": N}
      -> N datagrams {"op": "fdata", "tag": T, "seq": i} to the sender (first request per tag only)

Plain text that is not JSON gets the answer "IP:PORT\\n" (handy with socat/nc).
The observer exits after --lifetime seconds (bounded, for tests).
"""
import argparse
import json
import selectors
import socket
import sys
import time


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", action="append", required=True, help="address to listen on (repeatable)")
    ap.add_argument("--ports", default="5000-5007", help="port or range LO-HI (default 5000-5007)")
    ap.add_argument("--lifetime", type=float, default=600.0, help="exit after this many seconds")
    ap.add_argument("--ready-file", help="touch this file once all sockets are bound")
    args = ap.parse_args()

    lo, _, hi = args.ports.partition("-")
    ports = range(int(lo), int(hi or lo) + 1)
    sel = selectors.DefaultSelector()
    socks = {}
    for a in args.addr:
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, p))
            s.setblocking(False)
            socks[f"{a}:{p}"] = s
            sel.register(s, selectors.EVENT_READ, f"{a}:{p}")
    if args.ready_file:
        open(args.ready_file, "w").close()
    print("READY", " ".join(socks), flush=True)

    counts = {}
    flooded = set()
    deadline = time.monotonic() + args.lifetime
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sock, via = key.fileobj, key.data
            try:
                data, src = sock.recvfrom(65535)
            except BlockingIOError:
                continue
            try:
                msg = json.loads(data)
                if not isinstance(msg, dict):
                    raise ValueError
            except ValueError:
                sock.sendto(f"{src[0]}:{src[1]}\n".encode(), src)
                continue
            op = msg.get("op")
            try:
                if op == "whoami":
                    out = {"op": "you", "id": msg.get("id"), "ip": src[0], "port": src[1], "via": via}
                    sock.sendto(json.dumps(out).encode(), src)
                elif op == "poke":
                    for v in msg.get("via", []):
                        if v in socks:
                            out = {"op": "poked", "id": msg.get("id"), "from": v}
                            socks[v].sendto(json.dumps(out).encode(), src)
                elif op == "data":
                    counts.setdefault(msg.get("tag"), set()).add(msg.get("seq"))
                elif op == "count":
                    out = {"op": "counted", "tag": msg.get("tag"), "n": len(counts.get(msg.get("tag"), ()))}
                    sock.sendto(json.dumps(out).encode(), src)
                elif op == "flood":
                    tag = msg.get("tag")
                    if tag not in flooded:
                        flooded.add(tag)
                        n = min(int(msg.get("n", 0)), 100000)
                        for i in range(n):
                            out = json.dumps({"op": "fdata", "tag": tag, "seq": i}).encode()
                            try:
                                sock.sendto(out, src)
                            except BlockingIOError:
                                time.sleep(0.001)
                                sock.sendto(out, src)
                            if i % 50 == 49:
                                time.sleep(0.001)  # stay under the socket buffers
            except OSError as e:
                print(f"observer: send to {src} failed: {e}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
