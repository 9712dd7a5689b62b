"""Build script: metadata lives in setup.cfg; this only adds the optional C
accelerator (gws/_speedups.c). Where it cannot be compiled, gws installs
anyway and uses its pure-Python masking."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("gws._speedups", ["gws/_speedups.c"], optional=True)])
