"""quic_portal: an encrypted QUIC channel for whole messages between two programs.

The API is the one of quic-portal 0.1.x (programs written for it run
unchanged), implemented over libquicportal, a C library:

    from quic_portal import Portal

    server = Portal()
    server.listen(5555)                           # blocks until a client connects

    client = Portal()
    client.connect("203.0.113.7", 5555, 5556)     # from local port 5556
    client.send(b"Hello!")
    data = server.recv(timeout_ms=1000)           # bytes, or None on timeout

The library's log goes to the standard ``logging`` module, logger
``"quic_portal"``.
"""

from __future__ import annotations

import atexit as _atexit
import logging as _logging
import math as _math
import numbers as _numbers
import socket as _socket
import threading as _threading
import time as _time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _core
from ._core import ConnectionError, PortalError, QuicTransportOptions, __version__
from ._mapping import MappingStore as _MappingStore

__all__ = [
    "Portal",
    "QuicTransportOptions",
    "PortalError",
    "ConnectionError",
    "__version__",
]

#: The STUN servers quic-portal 0.1.x asks by default.
DEFAULT_STUN_SERVERS: List[Tuple[str, int]] = [
    ("stun.ekiga.net", 3478),
    ("stun.l.google.com", 19302),
]

_log = _logging.getLogger("quic_portal")

#: The rendezvous session create_server/create_client use unless told.
DEFAULT_SESSION = "quic-portal"

# The I/O threads of portals still open at exit must not call into a
# finalizing interpreter: from then on the library logs to stderr itself.
_atexit.register(_core._shutdown_logging)


def _check_port(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 65535:
        raise ValueError(f"{name} must be between 0 and 65535, got {value!r}")
    return value


def _check_stun_server(entry: Any, name: str) -> Tuple[str, int]:
    if not isinstance(entry, (tuple, list)) or len(entry) != 2:
        raise TypeError(f"{name} must be a (host, port) pair, got {entry!r}")
    host, port = entry
    if not isinstance(host, str):
        raise TypeError(f"{name}: host must be a str, not {type(host).__name__}")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{name}: host must be a host name or IP address, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{name}: port must be an int, not {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise ValueError(f"{name}: port must be between 1 and 65535, got {port!r}")
    return host, port


def _stun_list(stun_servers: Any, stun_server: Any) -> List[Tuple[str, int]]:
    """The STUN servers to ask, from either keyword (not both)."""
    if stun_server is not None:
        if stun_servers is not DEFAULT_STUN_SERVERS:
            raise ValueError("give stun_servers or the older stun_server, not both")
        return [_check_stun_server(stun_server, "stun_server")]
    if (
        isinstance(stun_servers, tuple)
        and len(stun_servers) == 2
        and isinstance(stun_servers[0], str)
    ):
        stun_servers = [stun_servers]  # one (host, port) pair given by itself
    if isinstance(stun_servers, (str, bytes)) or not isinstance(stun_servers, Sequence):
        raise TypeError(
            "stun_servers must be a list of (host, port) pairs, not "
            f"{type(stun_servers).__name__}"
        )
    if len(stun_servers) == 0:
        raise ValueError("stun_servers must name at least one (host, port) STUN server")
    return [_check_stun_server(e, f"stun_servers[{i}]") for i, e in enumerate(stun_servers)]


def _check_punch_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, _numbers.Real):
        raise TypeError(f"punch_timeout must be a number of seconds, not {type(value).__name__}")
    if not value > 0 or value != value or value > 86400:
        raise ValueError(f"punch_timeout must be > 0 and at most 86400 seconds, got {value!r}")
    return float(value)


def _check_options(value: Any) -> Optional[QuicTransportOptions]:
    if value is not None and not isinstance(value, QuicTransportOptions):
        raise TypeError(
            "transport_options must be a QuicTransportOptions or None, not "
            f"{type(value).__name__}"
        )
    return value


def _check_session(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"session must be a str, not {type(value).__name__}")
    if not value or "\0" in value or len(value.encode("utf-8")) > 128:
        raise ValueError(f"session must be 1 to 128 bytes without NUL, got {value!r}")
    return value


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def _stun_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- STUN server names -------------------------------------------------------
#
# The C library resolves STUN server names with a blocking getaddrinfo()
# before it starts punching, outside punch_timeout and its cancel callback.
# A resolver that does not answer (offline, or a lost DNS packet: glibc then
# waits 5 s per try) would stall create_server/create_client past their
# punch_timeout and Ctrl-C. So names are resolved here first, all at once on
# daemon threads, waiting at most _RESOLVE_BUDGET (and a quarter of
# punch_timeout); the library gets IPv4 literals (its socket is IPv4), and a
# name without an answer in time is skipped for this call (logged), as the
# library skips names that do not resolve. Answers are cached.

_RESOLVE_BUDGET = 2.0  # seconds
_RESOLVE_TTL_OK = 300.0
_RESOLVE_TTL_FAIL = 30.0
_resolve_lock = _threading.Lock()
_resolve_cache: Dict[str, Tuple[float, Optional[str]]] = {}
_resolve_pending: Dict[str, _threading.Event] = {}


def _is_ip_literal(host: str) -> bool:
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def _resolve_worker(host: str, done: _threading.Event) -> None:
    try:
        infos = _socket.getaddrinfo(host, None, _socket.AF_INET, _socket.SOCK_DGRAM)
        addr: Optional[str] = infos[0][4][0] if infos else None
    except (OSError, UnicodeError):
        addr = None
    ttl = _RESOLVE_TTL_OK if addr else _RESOLVE_TTL_FAIL
    with _resolve_lock:
        _resolve_cache[host] = (_time.monotonic() + ttl, addr)
        _resolve_pending.pop(host, None)
    done.set()


def _resolve_stun(servers: List[Tuple[str, int]], budget: float) -> List[str]:
    """"host:port" texts for the library: literals as given, names as the
    IPv4 address they resolve to within budget seconds; others skipped."""
    waits: Dict[str, _threading.Event] = {}
    now = _time.monotonic()
    with _resolve_lock:
        for host, _ in servers:
            if _is_ip_literal(host) or host in waits:
                continue
            hit = _resolve_cache.get(host)
            if hit is not None and hit[0] > now:
                continue
            ev = _resolve_pending.get(host)
            if ev is None:
                ev = _resolve_pending[host] = _threading.Event()
                _threading.Thread(target=_resolve_worker, args=(host, ev), daemon=True,
                                  name=f"quic_portal-resolve-{host}").start()
            waits[host] = ev
    deadline = now + budget
    for ev in waits.values():
        # In slices, so that signal handlers (Ctrl-C) run in between
        # whichever thread the signal was delivered to.
        while not ev.is_set():
            left = deadline - _time.monotonic()
            if left <= 0:
                break
            ev.wait(min(left, 0.05))
    out = []
    with _resolve_lock:
        for host, port in servers:
            if _is_ip_literal(host):
                out.append(_stun_text(host, port))
                continue
            hit = _resolve_cache.get(host)
            addr = hit[1] if hit is not None else None
            if addr:
                out.append(_stun_text(addr, port))
            else:
                _log.info("STUN server %s:%d skipped: %s", host, port,
                          "not resolved" if hit is not None
                          else f"no DNS answer within {budget:.1f} s")
    return out


def _create(
    cls: type,
    is_server: bool,
    mapping: Any,
    local_port: Any,
    stun_servers: Any,
    stun_server: Any,
    punch_timeout: Any,
    transport_options: Any,
    session: Any,
    pin: Any,
    legacy: Any,
) -> "Portal":
    """Check create_server/create_client's arguments, then rendezvous and
    traverse in the C library."""
    url = getattr(mapping, "_qp_rendezvous_url", None)
    if not isinstance(url, str):
        url = None
    start = _time.monotonic()
    store = None if url is not None else _MappingStore(mapping)
    port = _check_port(local_port, "local_port")
    servers = _stun_list(stun_servers, stun_server)
    if len(servers) > 16:
        raise ValueError(f"at most 16 STUN servers, got {len(servers)}")
    timeout = _check_punch_timeout(punch_timeout)
    opts = _check_options(transport_options)
    if session is None:
        session = getattr(mapping, "_qp_session", None) or DEFAULT_SESSION
    session = _check_session(session)
    no_pin = _check_flag(legacy, "legacy") or not _check_flag(pin, "pin")
    stun = _resolve_stun(servers, min(_RESOLVE_BUDGET, timeout / 4))
    # punch_timeout counts from the call: what the names took is spent.
    full_ms = max(1, int(_math.ceil(timeout * 1000)))
    spent_ms = int((_time.monotonic() - start) * 1000)
    timeout_ms = max(1, full_ms - spent_ms) if spent_ms >= 20 else full_ms
    try:
        return _core._create(cls, is_server, store, url, session, port, stun, timeout_ms,
                             no_pin, opts)
    except ConnectionError as e:
        # The library counted from when it started; the caller from the call.
        said = f"Failed to punch NAT within {timeout_ms} ms"
        text = str(e)
        if timeout_ms != full_ms and text.startswith(said):
            e.args = (f"Failed to punch NAT within {full_ms} ms" + text[len(said):],)
        raise


_CREATE_DOC = """{summary}

    ``dict`` is any mapping both sides reach: a plain ``dict`` (both sides
    in one process), a ``modal.Dict``, any object with ``__setitem__``,
    ``__getitem__`` and ``__contains__`` (values are stored as ``str``), or
    a ``quic_portal.rendezvous.DirDict`` / ``RedisDict`` (then the C library
    talks to that folder or Redis server itself). Records are kept under
    ``"qp/<session>/..."``.

    ``stun_servers`` (or the older single ``stun_server``) are (host, port)
    pairs asked for this side's public address; names that do not resolve
    are skipped (peers on one network still meet through their local
    addresses). ``punch_timeout`` (seconds) bounds the whole meeting.
    Keywords beyond 0.1.x: ``session`` separates pairs sharing one store
    (default: the store's own session, else ``"quic-portal"``); ``pin``
    (default True) makes both sides verify each other's certificate against
    the fingerprint published in the store; ``legacy=True`` (or
    ``pin=False``) skips that, as 0.1.x did.

    Returns a connected Portal. Raises ConnectionError with the library's
    message ("Failed to punch NAT within N ms: ..." when no path was found
    in time), TypeError/ValueError for bad arguments, KeyboardInterrupt on
    Ctrl-C (within about 100 ms).
    """


class Portal(_core.Portal):
    """One QUIC connection carrying whole messages.

    ``listen``/``connect`` make the connection directly (you handle NAT
    traversal, or the server is reachable); ``create_server`` /
    ``create_client`` meet through a shared mapping and traverse NATs.
    """

    @staticmethod
    def create_server(
        dict: Any,
        local_port: int = 5555,
        stun_servers: Sequence[Tuple[str, int]] = DEFAULT_STUN_SERVERS,
        punch_timeout: float = 15,
        transport_options: Optional[QuicTransportOptions] = None,
        *,
        stun_server: Optional[Tuple[str, int]] = None,
        session: Optional[str] = None,
        pin: bool = True,
        legacy: bool = False,
    ) -> "Portal":
        return _create(Portal, True, dict, local_port, stun_servers, stun_server,
                       punch_timeout, transport_options, session, pin, legacy)

    @staticmethod
    def create_client(
        dict: Any,
        local_port: int = 5556,
        stun_servers: Sequence[Tuple[str, int]] = DEFAULT_STUN_SERVERS,
        punch_timeout: float = 15,
        transport_options: Optional[QuicTransportOptions] = None,
        *,
        stun_server: Optional[Tuple[str, int]] = None,
        session: Optional[str] = None,
        pin: bool = True,
        legacy: bool = False,
    ) -> "Portal":
        return _create(Portal, False, dict, local_port, stun_servers, stun_server,
                       punch_timeout, transport_options, session, pin, legacy)

    create_server.__func__.__doc__ = _CREATE_DOC.format(
        summary="Meet a client through ``dict``, traverse NATs, return a connected Portal."
    )
    create_client.__func__.__doc__ = _CREATE_DOC.format(
        summary="Meet a server through ``dict``, traverse NATs, return a connected Portal."
    )

    def __enter__(self) -> "Portal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.is_connected() else "not connected"
        peer = ""
        if self.server_ip is not None:
            peer = f" to {self.server_ip}:{self.server_port}"
        return f"<quic_portal.Portal {state}{peer}>"


Portal.__module__ = "quic_portal"
