"""Build steps that pyproject.toml cannot express.

* ``minipod._native`` — the cffi extension (native/build_ffi.py).
* ``minipod/bin/minipod-pause`` — the pod's pause process, a tiny static
  program built from native/pause.c and installed inside the package so that
  ``minipod._sys.pause_binary()`` finds it next to the code.

Both ``pip install .``, ``pip install -e .`` and
``python setup.py build_ext --inplace`` produce the two.
"""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

PAUSE_SOURCE = os.path.join("native", "pause.c")
PAUSE_RELPATH = os.path.join("minipod", "bin", "minipod-pause")
PAUSE_FLAGS = ["-Os", "-s", "-Wall"]


def compile_pause(output: str) -> None:
    """Compile native/pause.c to ``output``: static if the C library allows
    (libc6-dev ships libc.a), else dynamic, which works but costs more RSS."""
    os.makedirs(os.path.dirname(output), exist_ok=True)
    cc = os.environ.get("CC", "cc").split()
    static = cc + PAUSE_FLAGS + ["-static", "-o", output, PAUSE_SOURCE]
    if subprocess.call(static) == 0:
        return
    print("warning: static link of minipod-pause failed (no static libc?); "
          "building it dynamically", file=sys.stderr)
    subprocess.check_call(cc + PAUSE_FLAGS + ["-o", output, PAUSE_SOURCE])


class build_ext_with_pause(build_ext):
    """build_ext that also builds minipod-pause: into the source tree for
    ``--inplace`` and editable installs, else into the build directory that
    becomes the wheel."""

    def run(self):
        super().run()
        if self.inplace or getattr(self, "editable_mode", False):
            target = PAUSE_RELPATH
        else:
            target = os.path.join(self.build_lib, PAUSE_RELPATH)
        compile_pause(target)

    def get_outputs(self):
        outputs = super().get_outputs()
        if not (self.inplace or getattr(self, "editable_mode", False)):
            outputs.append(os.path.join(self.build_lib, PAUSE_RELPATH))
        return outputs


setup(
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": build_ext_with_pause},
)
