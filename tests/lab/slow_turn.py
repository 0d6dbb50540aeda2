#!/usr/bin/env python3
"""slow_turn.py: a TURN server that answers slowly, for test_relay.sh.

A UDP forwarder in front of a real TURN server (coturn): every datagram from
a client goes on at once (from one upstream socket per client), and what
the server sends back is held DELAY_MS when it is a STUN answer (a success
or error response: to Allocate, Refresh, CreatePermission, ChannelBind),
while Data indications and ChannelData (the peer's traffic) pass at once.
So an Allocate, which takes two round trips (401, then the authenticated
one), completes about 2 * DELAY_MS late, after gathering, while the relayed
checks and QUIC run at full speed.

    slow_turn.py LISTEN_IP:PORT SERVER_IP:PORT DELAY_MS

Prints "slow_turn: ready" once bound. Ends on SIGTERM/SIGINT. At most
MAX_CLIENTS clients (each is one upstream socket).
"""
import heapq
import select
import signal
import socket
import sys
import time

MAX_CLIENTS = 16  # a lab test has one or two
DATAGRAM_MAX = 65535


def hostport(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def is_answer(data):
    """A STUN success or error response (RFC 8489 section 5: class bits)."""
    if len(data) < 2 or data[0] >= 4:
        return False
    msg_type = data[0] << 8 | data[1]
    return bool(msg_type & 0x0100)  # C1 set: success (10) or error (11)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: slow_turn.py LISTEN_IP:PORT SERVER_IP:PORT DELAY_MS")
    listen, server, delay = hostport(sys.argv[1]), hostport(sys.argv[2]), int(sys.argv[3]) / 1000.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(listen)
    upstream = {}  # client address -> socket towards the server
    client_of = {}  # upstream socket fd -> client address
    held = []  # (due time, seq, datagram, client address)
    seq = 0
    print("slow_turn: ready", file=sys.stderr, flush=True)
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([front] + list(upstream.values()), [], [], timeout)
        for sock in readable:
            data, src = sock.recvfrom(DATAGRAM_MAX)
            if sock is front:
                up = upstream.get(src)
                if up is None:
                    if len(upstream) >= MAX_CLIENTS:
                        continue
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.bind((listen[0], 0))
                    upstream[src] = up
                    client_of[up.fileno()] = src
                up.sendto(data, server)
            elif is_answer(data):
                seq += 1
                heapq.heappush(held, (time.monotonic() + delay, seq, data, client_of[sock.fileno()]))
            else:
                front.sendto(data, client_of[sock.fileno()])
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, data, client = heapq.heappop(held)
            front.sendto(data, client)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
