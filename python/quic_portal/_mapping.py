"""Adapters from a user's shared mapping to the rendezvous callbacks.

``Portal.create_server`` / ``create_client`` take any object shared by both
sides as ``dict``: a plain ``dict`` (both sides in one process), a
``modal.Dict``, or any object with ``__setitem__``, ``__getitem__`` and
``__contains__``. The C library's rendezvous talks to a store through three
callbacks (put, get, delete) with ``str`` keys and ``bytes`` values;
:class:`MappingStore` provides them on top of such an object.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Callable, Optional, Union

__all__ = ["MappingStore", "check_mapping"]

_REQUIRED = ("__setitem__", "__getitem__", "__contains__")

#: Prefix of a value that was not UTF-8 text and is stored base64-encoded.
_B64 = "base64:"


def check_mapping(obj: Any, name: str = "dict") -> None:
    """Raise TypeError unless obj can serve as a rendezvous store."""
    if isinstance(obj, (str, bytes, bytearray, list, tuple)):
        raise TypeError(
            f"{name} must be a mapping shared by both sides (a dict, a modal.Dict, "
            f"or any object with __setitem__, __getitem__ and __contains__), "
            f"not {type(obj).__name__}"
        )
    missing = [m for m in _REQUIRED if not hasattr(type(obj), m) and not hasattr(obj, m)]
    if missing:
        raise TypeError(
            f"{name} must be a mapping shared by both sides (a dict, a modal.Dict, "
            f"or any object with __setitem__, __getitem__ and __contains__); "
            f"{type(obj).__name__} lacks {', '.join(missing)}"
        )


def encode_value(value: Union[bytes, bytearray, memoryview, str]) -> str:
    """bytes -> the str kept in the mapping: the text itself when it is UTF-8
    (the library's records are JSON), else ``"base64:..."``."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    value = bytes(value)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith(_B64):
        return _B64 + base64.b64encode(value).decode("ascii")
    return text


def decode_value(value: Any) -> Optional[bytes]:
    """What the mapping holds -> bytes, or None for anything that is not a
    value of ours (a stale entry of another kind cannot break the rendezvous;
    an empty value stands for a deleted key)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        if not value.startswith(_B64.encode()):
            return value or None
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or not value:
        return None
    if value.startswith(_B64):
        try:
            return base64.b64decode(value[len(_B64):], validate=True)
        except ValueError:
            return None
    return value.encode("utf-8")


class MappingStore:
    """put/get/delete over a mapping, values kept as str.

    Values are written as ``str`` so that any store can hold them (a
    ``modal.Dict`` pickles them, Redis and files keep text): the UTF-8 text
    itself, or ``"base64:"`` and the base64 of bytes that are not UTF-8.
    Values read back may be ``str`` or ``bytes`` (a store that returns
    bytes); anything else is treated as absent.

    The C library calls ``put(key, value: bytes)``, ``get(key) -> bytes |
    None`` and ``delete(key)`` with keys ``"qp/<session>/<name>"``.
    """

    #: The legacy-peer check runs at most this often (seconds).
    PEER_CHECK_EVERY = 0.2

    def __init__(self, mapping: Any, on_peer_read: Optional[Callable[[], None]] = None
                 ) -> None:
        check_mapping(mapping)
        self._m = mapping
        # Called (at most every PEER_CHECK_EVERY s) when the library reads
        # the peer's record: it may raise to stop the call (a 0.1.x peer).
        self._on_peer_read = on_peer_read
        self._next_check = 0.0
        # One round trip instead of two (`in`, then `[]`) on stores with a
        # get(); a dict subclass may override __getitem__ alone, so dicts
        # are read with `in` and `[]`.
        getter = getattr(mapping, "get", None)
        self._get = None if isinstance(mapping, dict) or not callable(getter) else getter

    @property
    def mapping(self) -> Any:
        return self._m

    def put(self, key: str, value: Union[bytes, bytearray, memoryview, str]) -> None:
        self._m[key] = encode_value(value)

    def get(self, key: str) -> Optional[bytes]:
        if self._on_peer_read is not None and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.PEER_CHECK_EVERY
            self._on_peer_read()
        if self._get is not None:
            try:
                return decode_value(self._get(key))
            except (KeyError, TypeError):
                pass  # a get() of another shape: use `in` and `[]`
        try:
            if key not in self._m:
                return None
            value = self._m[key]
        except KeyError:
            return None  # deleted between the two calls
        return decode_value(value)

    def delete(self, key: str) -> None:
        m = self._m
        try:
            if key in m:
                del m[key]
        except KeyError:
            pass  # deleted meanwhile by the other side
        except (TypeError, AttributeError):
            # A store without deletion: an empty value reads as absent.
            m[key] = ""
