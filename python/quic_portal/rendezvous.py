"""Rendezvous stores for users outside Modal.

``Portal.create_server`` / ``Portal.create_client`` need a mapping both
sides can reach. Inside one Python process a plain ``dict`` does; on Modal a
``modal.Dict``. Elsewhere:

- :class:`DirDict` ``(path)``: one file per key in a directory both sides
  can see (processes of one machine, or machines sharing a folder);
- :class:`RedisDict` ``(url)``: entries in a Redis server,
  ``"redis://HOST[:PORT][/DB]"``.

Both are ordinary mutable mappings (``d[key] = value``, ``d[key]``,
``key in d``, ``del d[key]``, ``d.get(key)``, ``d.put(key, value)``, ...) with
``str`` keys. As ``modal.Dict``, they hold any picklable value: bytes are
stored as they are, a ``str`` UTF-8 encoded (reading returns ``bytes``, the
form the C library reads), anything else pickled (reading returns the
object). Unpickling runs code the writer chose: share such a store only
with peers you trust (as with a ``modal.Dict``). Given to ``create_server`` /
``create_client``, they are not driven from Python: the C library talks to
the same folder or Redis server itself (its ``dir:`` and ``redis://``
rendezvous backends), keeping its records under ``qp/<session>/``.
``session`` (default ``"quic-portal"``) separates pairs of peers that share
one store; ``create_server(..., session=...)`` overrides it.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import tempfile
import threading
from collections.abc import MutableMapping
from typing import Any, Iterator, List, Optional, Tuple, Union

from ._core import PortalError

__all__ = ["RedisDict", "DirDict", "RedisError"]


_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


#: Prefix of a stored value that is a pickled object (a NUL first: never the
#: start of a record's JSON text or of UTF-8 text a user stores).
_PICKLED = b"\x00qp-pickle\x00"


def _value_bytes(value: Any) -> bytes:
    """What is stored for value: bytes as they are, str as UTF-8, any other
    object (and bytes that start like a pickled value) pickled."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data.startswith(_PICKLED):
            return data
        value = data
    try:
        return _PICKLED + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise TypeError(f"values must be picklable; {type(value).__name__} is not: {e}"
                        ) from e


def _value_from(data: bytes) -> Any:
    """The stored bytes -> the value (bytes, or the unpickled object)."""
    if data.startswith(_PICKLED):
        return pickle.loads(data[len(_PICKLED):])
    return data


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"keys must be str, not {type(key).__name__}")
    if not key:
        raise ValueError("keys must not be empty")
    return key


def _check_session(session: Any) -> Optional[str]:
    if session is None:
        return None
    if not isinstance(session, str):
        raise TypeError(f"session must be a str or None, not {type(session).__name__}")
    if not session or len(session.encode("utf-8")) > 128 or "\0" in session:
        raise ValueError(f"session must be 1 to 128 bytes without NUL, got {session!r}")
    return session


# ---- DirDict -----------------------------------------------------------------


def _escape_component(text: str) -> str:
    """One path component, as the C library's folder backend names it: bytes
    outside [A-Za-z0-9_.-], and a leading '.', become %XX."""
    out = []
    for i, b in enumerate(text.encode("utf-8")):
        if b in _PLAIN and not (i == 0 and b == 0x2E):
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def _unescape_component(name: str) -> str:
    return re.sub(
        rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), name.encode("ascii")
    ).decode("utf-8", "surrogateescape")


def _key_part(name: str) -> Optional[str]:
    """The key part a file or folder name stands for, or None."""
    try:
        part = _unescape_component(name)
    except (UnicodeError, ValueError):
        return None
    if "/" in part or _escape_component(part) != name:
        return None
    return part


class DirDict(MutableMapping):
    """A mapping kept as files in a directory: key ``"a/b"`` is the file
    ``path/a/b`` (each ``/``-separated part escaped as the C library does,
    so ``d["qp/quic-portal/server"]`` is the file the server's
    ``create_server`` wrote). Writes go to a temporary file in the same
    folder (a name starting with ``.``) that is fsync()ed and renamed over
    the key, so a reader sees the old value or the new one, never a mix.
    Files are created 0600 and folders 0700.

    A key cannot be both a value and a folder of values (``"a"`` and
    ``"a/b"``): writing the second raises ``OSError``.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], session: Optional[str] = None
                 ) -> None:
        path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        if not path or "\0" in path:
            raise ValueError(f"path must name a directory, got {path!r}")
        self.path = os.path.abspath(path)
        if len(self.path.encode("utf-8")) > 3000:
            raise ValueError("path is longer than 3000 bytes")
        self.session = _check_session(session)
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        self._qp_rendezvous_url = "dir:" + self.path
        self._qp_session = self.session

    def _file(self, key: Any) -> str:
        parts = _check_key(key).split("/")
        if any(p == "" for p in parts):
            raise ValueError(f"key {key!r} has an empty '/'-separated part")
        return os.path.join(self.path, *(_escape_component(p) for p in parts))

    def __getitem__(self, key: str) -> Any:
        try:
            with open(self._file(key), "rb") as f:
                return _value_from(f.read())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        data = _value_bytes(value)
        target = self._file(key)
        parent = os.path.dirname(target)
        os.makedirs(parent, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", dir=parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def __delitem__(self, key: str) -> None:
        try:
            os.unlink(self._file(key))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            return os.path.isfile(self._file(key))
        except ValueError:
            return False

    def __iter__(self) -> Iterator[str]:
        # Only names some key maps to: temporary files (".name.XXXXXX") and
        # foreign names are skipped, as are the C library's folders for a
        # session that contains "/" (it escapes the session as one part).
        for root, dirs, files in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if _key_part(d) is not None)
            rel = os.path.relpath(root, self.path)
            prefix = [] if rel == "." else [_key_part(p) for p in rel.split(os.sep)]
            for name in sorted(files):
                part = _key_part(name)
                if part is not None:
                    yield "/".join(prefix + [part])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def put(self, key: str, value: Any) -> None:
        """``d[key] = value`` (as ``modal.Dict.put``)."""
        self[key] = value

    def __repr__(self) -> str:
        return f"DirDict({self.path!r})"


# ---- RedisDict ---------------------------------------------------------------


class RedisError(PortalError):
    """Redis answered with an error, or could not be reached."""


def _parse_redis_url(url: Any) -> Tuple[str, int, int]:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    m = re.fullmatch(r"redis://(\[[^\]/@]+\]|[^:/@\[\]]+)(?::(\d{1,5}))?(?:/(\d{0,5}))?", url)
    if m is None:
        raise ValueError(f"url must be redis://HOST[:PORT][/DB] (no password), got {url!r}")
    host = m.group(1).strip("[]")
    port = int(m.group(2)) if m.group(2) else 6379
    db = int(m.group(3)) if m.group(3) else 0
    if not 1 <= port <= 65535:
        raise ValueError(f"url {url!r}: port must be 1 to 65535")
    if len(host) > 255:
        raise ValueError(f"url {url!r}: host name too long")
    return host, port, db


class _Resp:
    """A minimal Redis client (RESP2 over one TCP connection)."""

    def __init__(self, host: str, port: int, db: int, timeout: float) -> None:
        self.host, self.port, self.db, self.timeout = host, port, db, timeout
        self._sock: Optional[socket.socket] = None
        self._file: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None

    def _connect(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), self.timeout)
        except OSError as e:
            raise RedisError(f"Redis {self.host}:{self.port}: cannot connect: {e}") from e
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")
        if self.db:
            self._roundtrip(("SELECT", str(self.db)))

    @staticmethod
    def _encode(args: Tuple[Any, ...]) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a.encode("utf-8") if isinstance(a, str) else bytes(a)
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def _reply(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionResetError("connection closed by the server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RedisError(f"Redis {self.host}:{self.port}: {rest.decode('utf-8', 'replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._file.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionResetError("connection closed by the server")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"Redis {self.host}:{self.port}: unexpected reply {line[:40]!r}")

    def _roundtrip(self, args: Tuple[Any, ...]) -> Any:
        self._sock.sendall(self._encode(args))
        r = self._reply()
        if isinstance(r, RedisError):
            raise r
        return r

    def command(self, *args: Any) -> Any:
        with self._lock:
            for attempt in (1, 2):  # reconnect once after an I/O error
                try:
                    if self._sock is None:
                        self._connect()
                    return self._roundtrip(args)
                except RedisError:
                    raise
                except (OSError, ValueError) as e:
                    self.close()
                    if attempt == 2:
                        raise RedisError(
                            f"Redis {self.host}:{self.port}: {args[0]} failed: {e}") from e


class RedisDict(MutableMapping):
    """A mapping kept in a Redis server (``"redis://HOST[:PORT][/DB]"``).

    Keys are Redis keys as given; values are Redis strings (bytes). Given
    to ``create_server`` / ``create_client``, the C library's Redis backend
    uses the same server, with its records under ``qp/<session>/`` (they
    expire after an hour). ``timeout`` bounds connecting and each command.
    Uses a small built-in client (no ``redis`` package needed); safe to
    share between threads, and picklable (the connection is not).
    """

    def __init__(self, url: str, session: Optional[str] = None, *, timeout: float = 5.0
                 ) -> None:
        host, port, db = _parse_redis_url(url)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.url = url
        self.session = _check_session(session)
        self.timeout = float(timeout)
        self._qp_rendezvous_url = url
        self._qp_session = self.session
        self._client = _Resp(host, port, db, self.timeout)

    def __getstate__(self) -> dict:
        return {"url": self.url, "session": self.session, "timeout": self.timeout}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"], state["session"], timeout=state["timeout"])

    def ping(self) -> bool:
        """True if the server answers PING."""
        return self._client.command("PING") == "PONG"

    def __getitem__(self, key: str) -> Any:
        value = self._client.command("GET", _check_key(key))
        if value is None:
            raise KeyError(key)
        return _value_from(value)

    def get(self, key: str, default: Any = None) -> Any:
        value = self._client.command("GET", _check_key(key))
        return default if value is None else _value_from(value)

    def __setitem__(self, key: str, value: Any) -> None:
        self._client.command("SET", _check_key(key), _value_bytes(value))

    def put(self, key: str, value: Any) -> None:
        """``d[key] = value`` (as ``modal.Dict.put``)."""
        self[key] = value

    def __delitem__(self, key: str) -> None:
        if self._client.command("DEL", _check_key(key)) == 0:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        return bool(self._client.command("EXISTS", key))

    def _keys(self) -> List[str]:
        keys, cursor = [], b"0"
        while True:
            cursor, batch = self._client.command("SCAN", cursor, "COUNT", "1000")
            keys.extend(k.decode("utf-8", "surrogateescape") for k in batch)
            if cursor in (b"0", 0):
                return sorted(set(keys))

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return int(self._client.command("DBSIZE"))

    def close(self) -> None:
        """Close the connection (the next operation reconnects)."""
        with self._client._lock:
            self._client.close()

    def __repr__(self) -> str:
        s = f", session={self.session!r}" if self.session else ""
        return f"RedisDict({self.url!r}{s})"
