"""Build of the quic_portal extension for pip (`pip install ./python`).

The extension links libquicportal statically. By default this script builds
the library with CMake from the source tree this directory sits in
(python/..), into the build_ext temporary directory. Environment:

  QP_SOURCE_DIR  the quic-portal source tree (default: this file's parent)
  QP_BUILD_DIR   an existing CMake build directory that already holds
                 libquicportal.a (then CMake is not run)

Needs cmake, pkg-config, a C compiler and the development packages of
ngtcp2 (0.12, with its GnuTLS crypto helper), GnuTLS and hiredis.
"""

import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("QP_SOURCE_DIR") or os.path.dirname(HERE)
PKGS = ["libngtcp2_crypto_gnutls", "libngtcp2", "gnutls", "hiredis"]


def pkg_config_libs():
    try:
        out = subprocess.check_output(["pkg-config", "--libs", *PKGS], text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"quic_portal: pkg-config could not find {' '.join(PKGS)}: {e}\n"
                 "install their development packages (Debian: libngtcp2-dev "
                 "libngtcp2-crypto-gnutls-dev libgnutls28-dev libhiredis-dev)")
    return shlex.split(out)


class BuildExt(build_ext):
    """Build libquicportal.a with CMake first, then link it in."""

    def run(self):
        build_dir = os.environ.get("QP_BUILD_DIR")
        if not build_dir:
            if not os.path.exists(os.path.join(SOURCE, "CMakeLists.txt")):
                sys.exit(f"quic_portal: no quic-portal source tree at {SOURCE}; "
                         "set QP_SOURCE_DIR, or QP_BUILD_DIR to a built tree")
            build_dir = os.path.abspath(os.path.join(self.build_temp, "libquicportal"))
            subprocess.check_call(["cmake", "-S", SOURCE, "-B", build_dir,
                                   "-DCMAKE_BUILD_TYPE=Release", "-DQP_TESTS=OFF",
                                   "-DQP_WERROR=OFF"])
            subprocess.check_call(["cmake", "--build", build_dir, "--target",
                                   "quicportal_static", "-j", str(os.cpu_count() or 2)])
        lib = os.path.join(build_dir, "libquicportal.a")
        if not os.path.exists(lib):
            sys.exit(f"quic_portal: {lib} does not exist (build the quicportal_static target)")
        for ext in self.extensions:
            ext.extra_objects = [lib]
            ext.include_dirs.append(os.path.join(SOURCE, "include"))
        super().run()


core = Extension(
    "quic_portal._core",
    sources=["src/_core.c"],
    extra_compile_args=["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra"],
    extra_link_args=["-Wl,--exclude-libs,ALL", *pkg_config_libs(), "-lpthread", "-lm"],
)

setup(ext_modules=[core], cmdclass={"build_ext": BuildExt})
