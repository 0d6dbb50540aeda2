"""`pip install .` at the repository root: the Python package quic_portal
(python/quic_portal) with its C extension, which links libquicportal built
here with CMake (python/qp_build.py). Offline, with Debian's python3:

  python3 -m venv --system-site-packages /tmp/v
  /tmp/v/bin/pip install --no-build-isolation --no-index .

Build products go to build-pip/ (never build/, the CMake build folder).
"""

import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "python"))

from qp_build import core_extension, make_build_ext, version  # noqa: E402

BUILD = "build-pip"
os.makedirs(os.path.join(HERE, BUILD), exist_ok=True)

setup(
    version=version(HERE),
    ext_modules=[core_extension("python/src/_core.c")],
    cmdclass={"build_ext": make_build_ext(HERE)},
    options={"build": {"build_base": BUILD}, "egg_info": {"egg_base": BUILD}},
)
