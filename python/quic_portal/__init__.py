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
``"quic_portal"``: milestones (waiting for the peer, record adopted, path
found, connected) at INFO, details at DEBUG. ``QUIC_PORTAL_LOG=debug`` (or
``info``, ``warn``, ``error``, ``none``) alone shows them on stderr, without
configuring ``logging``.
"""

from __future__ import annotations

import atexit as _atexit
import enum as _enum
import importlib.util as _importlib_util
import logging as _logging
import math as _math
import numbers as _numbers
import os as _os
from typing import Any, Collection, List, Optional, Sequence, Tuple, Union

if _importlib_util.find_spec("quic_portal._core") is None:
    raise ImportError(
        "quic_portal's C extension (_core) is not built in "
        f"{_os.path.dirname(_os.path.abspath(__file__))}: run "
        "`make -C python` in the quic-portal source tree to build it in place, "
        "or install the package (`pip install .` at the tree's root)")

from . import _core  # noqa: E402
from ._core import (
    ArgumentError,
    ConnectionError,
    PortalError,
    QuicTransportOptions,
    StunServer,
    __version__,
)
from . import _legacy
from ._mapping import MappingStore as _MappingStore
from ._mapping import check_mapping as _check_mapping

__all__ = [
    "Portal",
    "QuicTransportOptions",
    "PortalError",
    "ConnectionError",
    "ArgumentError",
    "LegacyPeerError",
    "StunServer",
    "ErrorCode",
    "__version__",
]

#: The STUN servers quic-portal 0.1.x asks by default.
DEFAULT_STUN_SERVERS: List[Tuple[str, int]] = [
    ("stun.ekiga.net", 3478),
    ("stun.l.google.com", 19302),
]

_log = _logging.getLogger("quic_portal")

#: QUIC_PORTAL_LOG values and the logging level each stands for.
_ENV_LEVELS = {"debug": _logging.DEBUG, "info": _logging.INFO, "warn": _logging.WARNING,
               "warning": _logging.WARNING, "error": _logging.ERROR,
               "none": _logging.CRITICAL + 1}


def _log_from_environment() -> None:
    """QUIC_PORTAL_LOG=LEVEL alone makes the "quic_portal" logger show
    LEVEL and above on stderr: it gets that level and, unless someone gave
    it a handler already, its own stderr handler (and stops propagating, so
    that a handler configured later on the root does not print each line
    twice)."""
    level = _ENV_LEVELS.get(_os.environ.get("QUIC_PORTAL_LOG", "").strip().lower())
    if level is None:
        return
    _log.setLevel(level)
    if not _log.handlers:
        handler = _logging.StreamHandler()
        handler.setFormatter(_logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        _log.addHandler(handler)
        _log.propagate = False


_log_from_environment()

#: The library's error codes: ``PortalError.code`` is one of these numbers
#: (compare ``e.code == ErrorCode.PUNCH``; ``e.error_name`` is for display).
ErrorCode = _enum.IntEnum("ErrorCode", sorted(_core._ERROR_CODES.items(),
                                              key=lambda kv: -kv[1]))
ErrorCode.__module__ = "quic_portal"

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


def _require_seconds(value: Any, name: str, or_none: bool = False) -> None:
    """TypeError unless value is a real number (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, _numbers.Real):
        raise TypeError(f"{name} must be a number of seconds{' or None' if or_none else ''}, "
                        f"not {type(value).__name__}")


def _check_punch_timeout(value: Any) -> float:
    _require_seconds(value, "punch_timeout")
    if not value > 0 or value != value or value > 86400:
        raise ValueError(f"punch_timeout must be > 0 and at most 86400 seconds, got {value!r}")
    return float(value)


def _check_wait_timeout(value: Any) -> int:
    """wait_timeout seconds (None = forever) -> the library's ms (-1 = forever)."""
    if value is None:
        return -1
    _require_seconds(value, "wait_timeout", or_none=True)
    if not value > 0 or value != value or value > 10 ** 6:
        raise ValueError(f"wait_timeout must be > 0 and at most 1000000 seconds "
                         f"(None waits forever), got {value!r}")
    return max(1, int(_math.ceil(value * 1000)))


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


def _check_secret(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"secret must be a str or None, not {type(value).__name__}")
    n = len(value.encode("utf-8"))
    if "\0" in value or not 8 <= n <= 256:
        raise ValueError(f"secret must be 8 to 256 bytes without NUL, got {n} bytes "
                         "(use a long random one, e.g. secrets.token_urlsafe(20))")
    return value


def _check_turn_list(value: Any, name: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, not {type(value).__name__}")
    for i, e in enumerate(value):
        if not isinstance(e, str):
            raise TypeError(f"{name}[{i}] must be a str, not {type(e).__name__}")
        if "@" not in e or "\0" in e:
            form = "USER:PASS@HOST[:PORT]" if name == "turn_servers" else "SECRET@HOST[:PORT]"
            raise ValueError(f"{name}[{i}] must look like {form}")
    return list(value)


_RELAY_POLICIES = {"auto": 0, "never": 1, "only": 2}


def _check_relay(value: Any, turn_count: int) -> int:
    if not isinstance(value, str) or value not in _RELAY_POLICIES:
        raise ValueError(f"relay must be 'auto', 'never' or 'only', got {value!r}")
    if value == "only" and turn_count == 0:
        raise ValueError("relay='only' needs a TURN server (turn_servers or "
                         "turn_secret_servers)")
    return _RELAY_POLICIES[value]


_PORTMAP_BITS = {"upnp": 1, "natpmp": 2, "pcp": 4}


def _check_portmap(value: Any) -> int:
    """portmap: True (all three protocols), False (none) or a collection of
    "upnp", "natpmp", "pcp" -> the protocol bits the C binding takes."""
    if isinstance(value, bool):
        return 7 if value else 0
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"portmap must be True, False or a collection of 'upnp', "
                        f"'natpmp', 'pcp', not {type(value).__name__}")
    bits = 0
    for name in value:
        if name not in _PORTMAP_BITS:
            raise ValueError(f"portmap: unknown protocol {name!r} (expected 'upnp', "
                             f"'natpmp' or 'pcp')")
        bits |= _PORTMAP_BITS[name]
    return bits


def _check_reconnect_timeout(value: Any) -> int:
    """reconnect_timeout seconds (None = the library's default) -> ms (-1)."""
    if value is None:
        return -1
    _require_seconds(value, "reconnect_timeout", or_none=True)
    if not value >= 0 or value != value or value > 86400:
        raise ValueError(f"reconnect_timeout must be 0 (off) to 86400 seconds, got {value!r}")
    return int(_math.ceil(value * 1000))


def _stun_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    wait_timeout: Any,
    secret: Any = None,
    turn_servers: Any = None,
    turn_secret_servers: Any = None,
    relay: Any = "auto",
    reconnect_timeout: Any = None,
    local_ip: Any = None,
    portmap: Any = True,
) -> "Portal":
    """Check create_server/create_client's arguments, then rendezvous and
    traverse in the C library (or speak 0.1.x's protocol: legacy=True)."""
    url = getattr(mapping, "_qp_rendezvous_url", None)
    if not isinstance(url, str):
        url = None
    _check_mapping(mapping)
    port = _check_port(local_port, "local_port")
    servers = _stun_list(stun_servers, stun_server)
    if len(servers) > 16:
        raise ValueError(f"at most 16 STUN servers, got {len(servers)}")
    timeout = _check_punch_timeout(punch_timeout)
    wait_ms = _check_wait_timeout(wait_timeout)
    opts = _check_options(transport_options)
    if session is None:
        session = getattr(mapping, "_qp_session", None) or DEFAULT_SESSION
    session = _check_session(session)
    no_pin = _check_flag(legacy, "legacy") or not _check_flag(pin, "pin")
    secret = _check_secret(secret)
    turn = _check_turn_list(turn_servers, "turn_servers")
    turn_rest = _check_turn_list(turn_secret_servers, "turn_secret_servers")
    if len(turn) + len(turn_rest) > 8:
        raise ValueError(f"at most 8 TURN servers, got {len(turn) + len(turn_rest)}")
    relay_policy = _check_relay(relay, len(turn) + len(turn_rest))
    reconnect_ms = _check_reconnect_timeout(reconnect_timeout)
    if local_ip is not None and not isinstance(local_ip, str):
        raise TypeError(f"local_ip must be an address string or None, not "
                        f"{type(local_ip).__name__}")
    portmap_bits = _check_portmap(portmap)
    if legacy and (secret is not None or turn or turn_rest or relay != "auto"):
        raise ValueError("legacy=True speaks 0.1.x's protocol: it takes no secret, "
                         "TURN server or relay policy")
    if legacy:
        _log.info("%s: speaking quic-portal 0.1.x's protocol (legacy=True)",
                  "create_server" if is_server else "create_client")
        return _legacy.create(cls, is_server, mapping, port, servers, timeout, wait_ms, opts)
    peer_key = "client" if is_server else "server"
    if url is not None:  # the C library reads DirDict/RedisDict itself
        _refuse_legacy_peer(mapping, peer_key, store_errors=False)
    store = None if url is not None else _MappingStore(
        mapping, on_peer_read=lambda: _refuse_legacy_peer(mapping, peer_key))
    _log.info("%s: meeting the %s through %s (session %r; waiting %s, then "
              "punch_timeout %.1f s)", "create_server" if is_server else "create_client",
              "client" if is_server else "server", url or type(mapping).__name__, session,
              "without limit" if wait_ms < 0 else f"at most {wait_ms / 1000:.1f} s", timeout)
    # Names are resolved by the C library (bounded, cancellable), not here.
    stun = [_stun_text(host, port) for host, port in servers]
    timeout_ms = max(1, int(_math.ceil(timeout * 1000)))
    return _core._create(cls, is_server, store, url, session, port, stun, timeout_ms,
                         wait_ms, no_pin, opts, secret, turn, turn_rest, relay_policy,
                         reconnect_ms, local_ip, portmap_bits)


class LegacyPeerError(PortalError):
    """The peer speaks quic-portal 0.1.x's protocol: meet it with legacy=True."""


def _refuse_legacy_peer(mapping: Any, key: str, store_errors: bool = True) -> None:
    """Fail fast when the peer's key holds what a 0.1.x peer stores. With
    store_errors False, a store that fails here is left for the library to
    report."""
    try:
        value = _legacy.read_key(mapping, key)
    except Exception:  # noqa: BLE001 - see store_errors
        if store_errors:
            raise
        return
    if _legacy.is_legacy_list(value):
        raise LegacyPeerError(
            f"the {key!r} key holds {list(value)!r}, a list of (ip, port) tuples: the "
            f"{key} runs quic-portal 0.1.x's protocol; pass legacy=True to meet it")


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
    addresses). The call waits for the peer to publish its record for
    ``wait_timeout`` seconds (default None: without limit, as 0.1.x; Ctrl-C
    stops it); ``punch_timeout`` (seconds) then bounds the traversal,
    counted from when the peer's record appeared.
    Keywords beyond 0.1.x: ``session`` separates pairs sharing one store
    (default: the store's own session, else ``"quic-portal"``); ``pin``
    (default True) makes both sides verify each other's certificate against
    the fingerprint published in the store (``pin=False`` skips that).
    ``legacy=True`` speaks quic-portal 0.1.x's rendezvous and punch protocol
    (keys ``"server"``/``"client"`` holding lists of (ip, port) tuples) and
    then QUIC without pinning, so that a 0.1.x peer connects unchanged;
    without it, a 0.1.x peer seen in the store makes the call fail at once
    (ConnectionError naming legacy=True).
    ``secret`` (8 to 256 bytes, both sides the same) seals the rendezvous:
    records are encrypted and authenticated and stored under a name derived
    from the secret and session, so the store shows neither, and someone who
    can write it cannot redirect either side; with different secrets each
    side sees no peer (ErrorCode.TIMEOUT with ``wait_timeout``). Default
    None: unsealed, as 0.1.x.
    ``turn_servers`` (``"USER:PASS@HOST[:PORT]"``) and
    ``turn_secret_servers`` (``"SECRET@HOST[:PORT]"``, coturn's REST
    shared secret) are TURN relays for the pairs no direct path joins;
    ``relay`` is ``"auto"`` (direct when possible), ``"never"`` or
    ``"only"``. ``Portal.path`` says which path is in use.
    ``reconnect_timeout`` (seconds; default None: the library's 30; 0: off)
    bounds how long a connection whose path died (NAT rebinding, network
    change) looks for a new one through the same store before send/recv
    raise; ``stats()["recoveries"]`` counts the recoveries. Recovery needs a
    store the library opens itself (DirDict, RedisDict): with a plain dict
    or modal.Dict it is off.
    ``local_ip`` (an address literal) binds traversal to that address and
    publishes only it as a local candidate: ``"127.0.0.1"`` keeps two
    programs on one machine on loopback. Default None: every address.
    ``portmap`` (default True): when a STUN server beyond this machine is
    given, also ask the gateway to forward a public UDP port to this side
    (UPnP IGD, NAT-PMP and PCP at once; gathering waits at most 20 ms
    after STUN for it, a later mapping is published late); a granted
    mapping becomes a candidate of its own and is deleted when the portal
    closes. False asks nothing; a collection such as ``{{"pcp",
    "natpmp"}}`` names the protocols to try.

    Returns a connected Portal (from create_client, ``server_ip`` and
    ``server_port`` name the server's address). Raises ConnectionError with
    the library's message and ``.code`` (ErrorCode.PUNCH: no path within
    punch_timeout; ErrorCode.TIMEOUT: no peer within wait_timeout),
    TypeError/ValueError for bad arguments, KeyboardInterrupt on Ctrl-C
    (within about 100 ms).
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
        wait_timeout: Optional[float] = None,
        secret: Optional[str] = None,
        turn_servers: Optional[Sequence[str]] = None,
        turn_secret_servers: Optional[Sequence[str]] = None,
        relay: str = "auto",
        reconnect_timeout: Optional[float] = None,
        local_ip: Optional[str] = None,
        portmap: Union[bool, Collection[str]] = True,
    ) -> "Portal":
        return _create(Portal, True, dict, local_port, stun_servers, stun_server,
                       punch_timeout, transport_options, session, pin, legacy,
                       wait_timeout, secret, turn_servers, turn_secret_servers, relay,
                       reconnect_timeout, local_ip, portmap)

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
        wait_timeout: Optional[float] = None,
        secret: Optional[str] = None,
        turn_servers: Optional[Sequence[str]] = None,
        turn_secret_servers: Optional[Sequence[str]] = None,
        relay: str = "auto",
        reconnect_timeout: Optional[float] = None,
        local_ip: Optional[str] = None,
        portmap: Union[bool, Collection[str]] = True,
    ) -> "Portal":
        return _create(Portal, False, dict, local_port, stun_servers, stun_server,
                       punch_timeout, transport_options, session, pin, legacy,
                       wait_timeout, secret, turn_servers, turn_secret_servers, relay,
                       reconnect_timeout, local_ip, portmap)

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
