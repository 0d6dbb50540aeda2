"""How pip builds quic_portal's C extension; shared by the repository's root
setup.py (``pip install .``, and the sdist) and python/setup.py
(``pip install ./python``).

The extension links libquicportal statically. BuildExt first builds the
library with CMake from the quic-portal source tree (its ``quicportal_static``
target, tests off) into the build_ext temporary directory. Environment:

  QP_SOURCE_DIR  the quic-portal source tree (default: the tree of this file)
  QP_BUILD_DIR   an existing CMake build directory that already holds
                 libquicportal.a (then CMake is not run)
  CMAKE_BUILD_PARALLEL_LEVEL  compile jobs (CMake's own variable; default:
                 the number of CPUs)

Needs cmake, pkg-config, a C compiler and the development packages the
library builds with (Debian: ``make -C <tree> deps`` or scripts/deps.sh).
"""

import os
import re
import shlex
import subprocess
import sys

from setuptools import Extension
from setuptools.command.build_ext import build_ext

#: pkg-config modules the library links, and libraries without a .pc file.
PKGS = ["libngtcp2_crypto_gnutls", "libngtcp2", "gnutls", "hiredis", "miniupnpc"]
PLAIN_LIBS = ["-lnatpmp", "-lpthread", "-lm"]


def version(tree):
    """QP_VERSION of the tree's public header."""
    with open(os.path.join(tree, "include", "quic_portal.h")) as f:
        m = re.search(r'^#define QP_VERSION "([^"]+)"', f.read(), re.M)
    if m is None:
        sys.exit(f"quic_portal: no QP_VERSION in {tree}/include/quic_portal.h")
    return m.group(1)


def link_flags():
    try:
        out = subprocess.check_output(["pkg-config", "--libs", *PKGS], text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"quic_portal: pkg-config could not find {' '.join(PKGS)}: {e}\n"
                 "install their development packages (Debian: libngtcp2-dev "
                 "libngtcp2-crypto-gnutls-dev libgnutls28-dev libhiredis-dev "
                 "libminiupnpc-dev libnatpmp-dev)")
    return shlex.split(out) + PLAIN_LIBS


def core_extension(source):
    """The quic_portal._core extension built from source (_core.c)."""
    return Extension(
        "quic_portal._core",
        sources=[source],
        extra_compile_args=["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra"],
        extra_link_args=["-Wl,--exclude-libs,ALL", *link_flags()],
    )


def make_build_ext(tree):
    """A build_ext that builds libquicportal.a from tree with CMake first."""

    class BuildExt(build_ext):
        def run(self):
            source = os.environ.get("QP_SOURCE_DIR") or tree
            build_dir = os.environ.get("QP_BUILD_DIR")
            if not build_dir:
                if not os.path.exists(os.path.join(source, "CMakeLists.txt")):
                    sys.exit(f"quic_portal: no quic-portal source tree at {source}; "
                             "set QP_SOURCE_DIR, or QP_BUILD_DIR to a built tree")
                build_dir = os.path.abspath(os.path.join(self.build_temp, "libquicportal"))
                subprocess.check_call(["cmake", "-S", source, "-B", build_dir,
                                       "-DCMAKE_BUILD_TYPE=Release", "-DQP_TESTS=OFF",
                                       "-DQP_WERROR=OFF"])
                jobs = [] if os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") else \
                    ["-j", str(os.cpu_count() or 2)]
                subprocess.check_call(["cmake", "--build", build_dir, "--target",
                                       "quicportal_static", *jobs])
            lib = os.path.join(build_dir, "libquicportal.a")
            if not os.path.exists(lib):
                sys.exit(f"quic_portal: {lib} does not exist (build the quicportal_static "
                         "target)")
            for ext in self.extensions:
                ext.extra_objects = [lib]
                ext.include_dirs.append(os.path.join(source, "include"))
            super().run()

    return BuildExt
