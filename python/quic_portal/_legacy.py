"""``legacy=True``: quic-portal 0.1.x's rendezvous and punch protocol.

A 0.1.x peer does not read the C library's records; with ``legacy=True``
``create_server`` / ``create_client`` speak its protocol instead, then QUIC
with its settings (no client certificate, no pinning) through
``Portal.listen`` / ``Portal.connect``, so a 0.1.x peer connects unchanged:

- Each side learns its public ``(ip, port)`` from its STUN servers on the
  socket bound to ``local_port`` and stores the list of those tuples under
  the key ``"server"`` or ``"client"`` of the shared mapping, rewritten every
  200 ms, reading the other key until it appears.
- The server sends ``b"punch"`` to every client endpoint each round (its
  socket waits 100 ms per receive); when a ``punch`` arrives it answers the
  sender with a burst of ``b"punch-ack"`` (about 30 ms apart), re-acks
  duplicate punches for up to 1 s, closes the socket, waits 100 ms and
  listens for QUIC on ``local_port``. After its first and second receive
  timeouts it widens its targets to ports 1000-9998, then 1000-65534, of the
  client's IPs.
- The client sends ``punch`` to the server endpoints, waits for a
  ``punch-ack`` from one of the server's IPs, closes its socket and connects
  QUIC from ``local_port`` to that endpoint.

The STUN Binding request here is the minimal one of RFC 5389 (no
credentials), sent from the socket that later carries QUIC. STUN server
names are looked up here (``socket.getaddrinfo`` on a helper thread, at most
``_RESOLVE_BUDGET`` seconds): this path has no C library socket to hand them
to.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _core

_log = logging.getLogger("quic_portal")

Endpoint = Tuple[str, int]

_PUBLISH_EVERY = 0.2   # s: 0.1.x rewrites its list this often
_RECV_WAIT = 0.1       # s: the server's socket waits this long per receive
_ACK_BURST = 3         # punch-acks sent at once when a punch arrives ...
_ACK_GAP = 0.03        # s: ... this far apart
_REACK_FOR = 1.0       # s: duplicate punches are re-acked this long
_LISTEN_PAUSE = 0.1    # s: between closing the punch socket and listening
_WIDE_PORTS = (range(1000, 9999), range(1000, 65535))  # after timeout 1, 2
_STUN_WAIT = 2.0       # s: STUN answers are awaited this long at most ...
_STUN_RETRY = 0.5      # s: ... and each request is sent again this often
_RESOLVE_BUDGET = 2.0  # s: STUN names are looked up within this time
_STUN_MAGIC = 0x2112A442
_STUN_BINDING = 0x0001
_STUN_SUCCESS = 0x0101
_ATTR_MAPPED = 0x0001
_ATTR_XOR_MAPPED = 0x0020


def _error(code: int, message: str) -> _core.ConnectionError:
    e = _core.ConnectionError(message)
    e.code = code
    e.error_name = "QP_ERR_" + next(k for k, v in _core._ERROR_CODES.items() if v == code)
    return e


def is_legacy_list(value: Any) -> bool:
    """What a 0.1.x peer stores: a list of (ip, port) tuples."""
    return isinstance(value, (list, tuple)) and all(
        isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str)
        and isinstance(e[1], int) and not isinstance(e[1], bool) for e in value)


def read_key(mapping: Any, key: str) -> Any:
    try:
        if key not in mapping:
            return None
        return mapping[key]
    except KeyError:
        return None


# ---- STUN --------------------------------------------------------------------


def _resolve(servers: Sequence[Endpoint]) -> List[Endpoint]:
    """IPv4 addresses of the servers, looked up together on helper threads
    within _RESOLVE_BUDGET (a name without an answer by then is skipped)."""
    out: Dict[int, Endpoint] = {}

    def look(i: int, host: str, port: int) -> None:
        try:
            info = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
            out[i] = info[0][4][:2]
        except (OSError, UnicodeError) as e:
            _log.info("legacy: STUN server %s:%d skipped: %s", host, port, e)

    threads = [threading.Thread(target=look, args=(i, h, p), daemon=True)
               for i, (h, p) in enumerate(servers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + _RESOLVE_BUDGET
    for t in threads:
        while t.is_alive() and time.monotonic() < deadline:
            t.join(0.05)  # in slices: Ctrl-C runs in between
    return [out[i] for i in sorted(out)]


def _stun_request() -> Tuple[bytes, bytes]:
    txid = os.urandom(12)
    return struct.pack("!HHI", _STUN_BINDING, 0, _STUN_MAGIC) + txid, txid


def _stun_mapped(data: bytes, txid: bytes) -> Optional[Endpoint]:
    """The (ip, port) of a Binding success response to txid, else None."""
    if len(data) < 20:
        return None
    mtype, length, magic = struct.unpack("!HHI", data[:8])
    if mtype != _STUN_SUCCESS or magic != _STUN_MAGIC or data[8:20] != txid:
        return None
    found = None
    pos, end = 20, min(len(data), 20 + length)
    while pos + 4 <= end:
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        value = data[pos + 4:pos + 4 + alen]
        pos += 4 + ((alen + 3) & ~3)
        if alen < 8 or value[1] != 0x01:  # IPv4 only: the socket is IPv4
            continue
        port = struct.unpack("!H", value[2:4])[0]
        ip = value[4:8]
        if atype == _ATTR_XOR_MAPPED:
            port ^= _STUN_MAGIC >> 16
            ip = bytes(a ^ b for a, b in zip(ip, struct.pack("!I", _STUN_MAGIC)))
            return socket.inet_ntoa(ip), port
        if atype == _ATTR_MAPPED:
            found = (socket.inet_ntoa(ip), port)
    return found


def stun_addresses(sock: socket.socket, servers: Sequence[Endpoint]) -> List[Endpoint]:
    """This socket's public endpoints as the servers see them (0.1.x's list)."""
    targets = _resolve(servers)
    pending = {}
    for addr in targets:
        pending[addr] = _stun_request()
    found: List[Endpoint] = []
    deadline = time.monotonic() + _STUN_WAIT
    next_send = 0.0
    while pending and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_send:
            for addr, (req, _) in pending.items():
                _send(sock, req, addr)
            next_send = now + _STUN_RETRY
        for data, addr in _receive(sock, min(0.05, max(0.0, deadline - now))):
            got = pending.get(addr)
            mapped = _stun_mapped(data, got[1]) if got else None
            if mapped:
                del pending[addr]
                if mapped not in found:
                    found.append(mapped)
    for addr in pending:
        _log.info("legacy: STUN server %s:%d did not answer within %.1f s", *addr, _STUN_WAIT)
    return found


# ---- datagrams ---------------------------------------------------------------


def _send(sock: socket.socket, data: bytes, addr: Endpoint) -> None:
    try:
        sock.sendto(data, addr)
    except OSError:
        pass  # an ICMP error of an earlier datagram, a full buffer: punching goes on


def _receive(sock: socket.socket, wait: float) -> List[Tuple[bytes, Endpoint]]:
    """Datagrams that arrive within wait seconds (all that are queued)."""
    out = []
    ready, _, _ = select.select([sock], [], [], wait)
    while ready:
        try:
            data, addr = sock.recvfrom(2048)
        except BlockingIOError:
            break
        except OSError:
            continue  # ICMP port unreachable of a punch to a closed port
        out.append((data, addr[:2]))
        ready, _, _ = select.select([sock], [], [], 0)
    return out


# ---- the mapping -------------------------------------------------------------


def meet(mapping: Any, own: str, peer: str, mine: List[Endpoint],
         wait_timeout_ms: int) -> List[Endpoint]:
    """Publish mine under own (again every 200 ms) until peer holds a list."""
    start = time.monotonic()
    next_publish = 0.0
    _log.info("legacy: published %s %s; waiting for the %s's list", own, mine, peer)
    while True:
        now = time.monotonic()
        if now >= next_publish:
            mapping[own] = list(mine)
            next_publish = now + _PUBLISH_EVERY
        value = read_key(mapping, peer)
        if is_legacy_list(value) and value:
            _log.info("legacy: the %s published %s", peer, list(value))
            return [(str(ip), int(port)) for ip, port in value]
        if wait_timeout_ms >= 0 and (now - start) * 1000 >= wait_timeout_ms:
            raise _error(_core._ERROR_CODES["TIMEOUT"],
                         f"the {peer} did not publish its list (key {peer!r}) within the "
                         f"wait timeout of {wait_timeout_ms} ms")
        time.sleep(0.05)


# ---- punching ----------------------------------------------------------------


def _ack(sock: socket.socket, addr: Endpoint) -> None:
    """A burst of punch-acks, then re-ack duplicate punches for up to 1 s."""
    for i in range(_ACK_BURST):
        _send(sock, b"punch-ack", addr)
        if i + 1 < _ACK_BURST:
            time.sleep(_ACK_GAP)
    end = time.monotonic() + _REACK_FOR
    while time.monotonic() < end:
        for data, src in _receive(sock, _ACK_GAP):
            if data == b"punch" and src == addr:
                _send(sock, b"punch-ack", addr)


def punch_as_server(sock: socket.socket, peers: List[Endpoint], deadline: float,
                    reread: Callable[[], List[Endpoint]]) -> Endpoint:
    targets = list(peers)
    timeouts = 0
    next_read = time.monotonic() + _PUBLISH_EVERY
    while time.monotonic() < deadline:
        for addr in targets:
            _send(sock, b"punch", addr)
        got = _receive(sock, _RECV_WAIT)
        for data, src in got:
            if data == b"punch":
                _log.info("legacy: punch from %s:%d; acknowledging", *src)
                _ack(sock, src)
                return src
        if not got and timeouts < len(_WIDE_PORTS):
            ips = sorted({ip for ip, _ in peers})
            targets = [(ip, p) for ip in ips for p in _WIDE_PORTS[timeouts]]
            timeouts += 1
        if time.monotonic() >= next_read:  # a client that restarted
            peers = _merge(peers, reread())
            next_read = time.monotonic() + _PUBLISH_EVERY
    raise _error(_core._ERROR_CODES["PUNCH"], f"Failed to punch NAT (legacy protocol): no "
                 f"punch from the client's endpoints {peers}")


def punch_as_client(sock: socket.socket, peers: List[Endpoint], deadline: float,
                    reread: Callable[[], List[Endpoint]]) -> Endpoint:
    next_read = time.monotonic() + _PUBLISH_EVERY
    while time.monotonic() < deadline:
        for addr in peers:
            _send(sock, b"punch", addr)
        ips = {ip for ip, _ in peers}
        for data, src in _receive(sock, _RECV_WAIT):
            if data == b"punch-ack" and src[0] in ips:
                _log.info("legacy: punch-ack from %s:%d", *src)
                return src
        if time.monotonic() >= next_read:
            peers = _merge(peers, reread())
            next_read = time.monotonic() + _PUBLISH_EVERY
    raise _error(_core._ERROR_CODES["PUNCH"], f"Failed to punch NAT (legacy protocol): no "
                 f"punch-ack from the server's endpoints {peers}")


def _merge(a: List[Endpoint], b: List[Endpoint]) -> List[Endpoint]:
    return a + [e for e in b if e not in a]


# ---- create_server / create_client -------------------------------------------


def create(cls: type, is_server: bool, mapping: Any, local_port: int,
           stun_servers: Sequence[Endpoint], punch_timeout: float, wait_timeout_ms: int,
           options: Any) -> Any:
    own, peer = ("server", "client") if is_server else ("client", "server")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    published = False
    try:
        sock.bind(("0.0.0.0", local_port))
        port = sock.getsockname()[1]
        mine = stun_addresses(sock, stun_servers)
        if not mine:
            raise _error(_core._ERROR_CODES["STUN"], f"legacy: no STUN server of "
                         f"{list(stun_servers)} answered from port {port}: 0.1.x's protocol "
                         "publishes only STUN addresses")
        published = True
        peers = meet(mapping, own, peer, mine, wait_timeout_ms)
        deadline = time.monotonic() + punch_timeout

        def reread() -> List[Endpoint]:
            value = read_key(mapping, peer)
            return [(str(i), int(p)) for i, p in value] if is_legacy_list(value) else []

        punch = punch_as_server if is_server else punch_as_client
        target = punch(sock, peers, deadline, reread)
    finally:
        sock.close()
        if published:
            _withdraw(mapping, own)
    portal = cls()
    if is_server:
        time.sleep(_LISTEN_PAUSE)
        portal.listen(port, options)
    else:
        portal.connect(target[0], target[1], port, options)
    _log.info("legacy: connected (%s) on port %d", own, port)
    return portal


def _withdraw(mapping: Any, key: str) -> None:
    try:
        del mapping[key]
    except (KeyError, TypeError, AttributeError, OSError):
        pass  # gone already, or a store without deletion
