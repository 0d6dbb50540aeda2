import enum
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple, Union

__version__: str
__all__: List[str]

DEFAULT_STUN_SERVERS: List[Tuple[str, int]]
DEFAULT_SESSION: str

_Buffer = Union[bytes, bytearray, memoryview]

class ErrorCode(enum.IntEnum):
    INVALID: int
    NOMEM: int
    TIMEOUT: int
    NOT_CONNECTED: int
    CLOSED: int
    TOO_LARGE: int
    SOCKET: int
    HANDSHAKE: int
    PEER_VERIFY: int
    TLS: int
    TRANSPORT: int
    IDLE_TIMEOUT: int
    STATE: int
    RESOLVE: int
    INTERRUPTED: int
    STUN: int
    RENDEZVOUS: int
    PUNCH: int
    PROTOCOL: int
    NOT_SUPPORTED: int
    INTERNAL: int

class PortalError(RuntimeError):
    code: int
    error_name: str

class ConnectionError(PortalError): ...

class ArgumentError(PortalError, ValueError): ...

class LegacyPeerError(PortalError): ...

class StunServer:
    port: int
    def __init__(self, primary: str = "127.0.0.1:0", alternate: Optional[str] = None) -> None: ...
    def stop(self) -> None: ...

class QuicTransportOptions:
    max_idle_timeout_secs: Union[int, float]
    congestion_controller_type: str
    initial_window: int
    keep_alive_interval_secs: Union[int, float]
    max_message_size: int
    def __init__(
        self,
        max_idle_timeout_secs: Union[int, float] = 10,
        congestion_controller_type: str = "bbr",
        initial_window: int = 1048576,
        keep_alive_interval_secs: Union[int, float] = 2,
        max_message_size: int = 1073741824,
    ) -> None: ...
    def __eq__(self, other: object) -> bool: ...

class Portal:
    @property
    def server_ip(self) -> Optional[str]: ...  # read-only
    @property
    def server_port(self) -> Optional[int]: ...
    @property
    def path(self) -> Optional[str]: ...  # not in 0.1.x
    def __init__(self) -> None: ...
    @staticmethod
    def create_server(
        dict: Any,
        local_port: int = 5555,
        stun_servers: Sequence[Tuple[str, int]] = ...,
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
    ) -> Portal: ...
    @staticmethod
    def create_client(
        dict: Any,
        local_port: int = 5556,
        stun_servers: Sequence[Tuple[str, int]] = ...,
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
    ) -> Portal: ...
    def listen(
        self,
        local_port: Optional[int] = None,
        transport_options: Optional[QuicTransportOptions] = None,
        pin: Optional[str] = None,
    ) -> None: ...
    def connect(
        self,
        server_ip: str,
        server_port: int,
        local_port: Optional[int] = None,
        transport_options: Optional[QuicTransportOptions] = None,
        pin: Optional[str] = None,
    ) -> None: ...
    def send(self, data: Union[_Buffer, str]) -> None: ...
    def recv(self, timeout_ms: Optional[int] = None) -> Optional[bytes]: ...
    def is_connected(self) -> bool: ...
    def close(self) -> None: ...
    # Additions beyond quic-portal 0.1.x.
    def stats(self) -> Dict[str, int]: ...
    def local_port(self) -> int: ...
    def fingerprint(self) -> str: ...
    def __enter__(self) -> Portal: ...
    def __exit__(self, *exc: Any) -> None: ...
