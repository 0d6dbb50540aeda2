"""Adapters from a user's shared mapping to the rendezvous callbacks.

``Portal.create_server`` / ``create_client`` take any object shared by both
sides as ``dict``: a plain ``dict`` (both sides in one process), a
``modal.Dict``, or any object with ``__setitem__``, ``__getitem__`` and
``__contains__``. The C library's rendezvous talks to a store through three
callbacks (put, get, delete) whose values are text; :class:`MappingStore`
provides them on top of such an object.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["MappingStore", "check_mapping"]

_REQUIRED = ("__setitem__", "__getitem__", "__contains__")


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


class MappingStore:
    """put/get/delete over a mapping, values stored as str.

    Values are written as ``str`` so that any store can hold them (a
    ``modal.Dict`` pickles them, Redis and files keep text). Values read back
    may be ``str`` or ``bytes`` (a store that returns bytes); anything else
    is treated as absent, so a stale entry of another kind left in a shared
    dict cannot break the rendezvous.
    """

    def __init__(self, mapping: Any) -> None:
        check_mapping(mapping)
        self._m = mapping

    def put(self, key: str, value: str) -> None:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8")
        self._m[key] = str(value)

    def get(self, key: str) -> Optional[str]:
        try:
            if key not in self._m:
                return None
            value = self._m[key]
        except KeyError:
            return None  # deleted between the two calls
        if isinstance(value, (bytes, bytearray)):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                return None
        if isinstance(value, str):
            return value
        return None

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
