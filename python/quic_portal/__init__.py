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
import numbers as _numbers
from typing import Any, List, Optional, Sequence, Tuple

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

_NAT_LATER = "NAT traversal lands with issue 3"

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


def _traversal_args(
    mapping: Any,
    local_port: Any,
    stun_servers: Any,
    stun_server: Any,
    punch_timeout: Any,
    transport_options: Any,
) -> dict:
    """Validate create_server/create_client's arguments (the C traversal
    API takes them as they come out of here)."""
    return {
        "store": _MappingStore(mapping),
        "local_port": _check_port(local_port, "local_port"),
        "stun_servers": _stun_list(stun_servers, stun_server),
        "punch_timeout": _check_punch_timeout(punch_timeout),
        "transport_options": _check_options(transport_options),
    }


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
    ) -> "Portal":
        """Meet a client through ``dict``, traverse NATs, return a connected Portal."""
        _traversal_args(dict, local_port, stun_servers, stun_server, punch_timeout,
                        transport_options)
        raise NotImplementedError(_NAT_LATER)

    @staticmethod
    def create_client(
        dict: Any,
        local_port: int = 5556,
        stun_servers: Sequence[Tuple[str, int]] = DEFAULT_STUN_SERVERS,
        punch_timeout: float = 15,
        transport_options: Optional[QuicTransportOptions] = None,
        *,
        stun_server: Optional[Tuple[str, int]] = None,
    ) -> "Portal":
        """Meet a server through ``dict``, traverse NATs, return a connected Portal."""
        _traversal_args(dict, local_port, stun_servers, stun_server, punch_timeout,
                        transport_options)
        raise NotImplementedError(_NAT_LATER)

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
