"""Rendezvous stores for users outside Modal (placeholder).

Issue 5 ships two mappings that ``Portal.create_server`` /
``Portal.create_client`` accept as ``dict`` when the two sides do not share
a Python process or a ``modal.Dict``:

- ``RedisDict(url, session)``: entries in a Redis server, on the C library's
  Redis backend (hiredis), namespaced by ``session``;
- ``DirDict(path)``: one file per key in a directory both sides can see.

They land together with NAT traversal (issue 3); until then constructing
them raises NotImplementedError. Any object with ``__setitem__``,
``__getitem__`` and ``__contains__`` already works as a store.
"""

from __future__ import annotations

__all__ = ["RedisDict", "DirDict"]

_LATER = "rendezvous stores land with NAT traversal (issue 3)"


class RedisDict:
    """A mapping kept in Redis under ``session`` (not implemented yet)."""

    def __init__(self, url: str, session: str) -> None:
        raise NotImplementedError(_LATER)


class DirDict:
    """A mapping kept as files in a directory (not implemented yet)."""

    def __init__(self, path: str) -> None:
        raise NotImplementedError(_LATER)
