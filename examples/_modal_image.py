"""The Modal image both examples run in: Debian 12 with quic_portal built
from this source tree (ngtcp2 0.12, GnuTLS and hiredis from Debian)."""

import os

import modal

SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install(
        "build-essential", "cmake", "pkg-config", "libngtcp2-dev",
        "libngtcp2-crypto-gnutls-dev", "libgnutls28-dev", "libhiredis-dev",
    )
    .add_local_dir(SOURCE_TREE, "/src/quic-portal", copy=True,
                   ignore=["build*", "**/__pycache__", ".git"])
    .run_commands("pip install /src/quic-portal/python")
)
