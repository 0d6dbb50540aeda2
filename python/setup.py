"""`pip install ./python`: the same package as `pip install .` at the
repository root (prefer that; see python/qp_build.py), built from the source
tree this folder sits in.
"""

import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from qp_build import core_extension, make_build_ext, version  # noqa: E402

TREE = os.path.dirname(HERE)

setup(
    version=version(TREE),
    ext_modules=[core_extension("src/_core.c")],
    cmdclass={"build_ext": make_build_ext(TREE)},
)
