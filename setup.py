"""Build steps that pyproject.toml cannot express.

* ``minipod._native`` — the cffi extension (native/build_ffi.py).
* ``minipod/bin/minipod-pause`` — the pod's pause process, a tiny static
  program built from native/pause.c (without any C library) or, on other
  CPUs, native/pause_libc.c, and installed inside the package so that
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
PAUSE_LIBC_SOURCE = os.path.join("native", "pause_libc.c")
PAUSE_RELPATH = os.path.join("minipod", "bin", "minipod-pause")
PAUSE_FLAGS = ["-Os", "-s", "-Wall"]
# pause.c brings its own _start and system calls: nothing of libc is linked
# in, so pause costs ~12 kB of RSS instead of ~700 kB for static glibc. No
# stack protector or unwind tables: there is no libc to support them.
PAUSE_NOLIBC_FLAGS = ["-nostdlib", "-static", "-ffreestanding", "-fno-stack-protector",
                      "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none"]
# The CPUs for which pause.c has its system call wrappers.
PAUSE_NOLIBC_ARCHES = ("x86_64", "aarch64")


def compiler_arch(cc: list[str]) -> str:
    """The CPU ``cc`` builds for ("x86_64"), asked of the compiler rather
    than the host since CC may be a cross compiler; "" if it cannot say."""
    try:
        out = subprocess.run(cc + ["-dumpmachine"], capture_output=True, text=True).stdout
    except OSError:
        return ""
    return out.strip().split("-")[0]


def compile_pause(output: str) -> None:
    """Compile minipod-pause to ``output``: native/pause.c without libc on
    x86_64 and aarch64; elsewhere (or if that fails) native/pause_libc.c,
    static if the C library allows (libc6-dev ships libc.a), else dynamic,
    which works but costs more RSS."""
    os.makedirs(os.path.dirname(output), exist_ok=True)
    cc = os.environ.get("CC", "cc").split()
    if compiler_arch(cc) in PAUSE_NOLIBC_ARCHES:
        if subprocess.call(cc + PAUSE_FLAGS + PAUSE_NOLIBC_FLAGS + ["-o", output, PAUSE_SOURCE]) == 0:
            return
        print("warning: building minipod-pause without libc failed; "
              "building it with libc", file=sys.stderr)
    with_libc = cc + PAUSE_FLAGS + ["-o", output, PAUSE_LIBC_SOURCE]
    if subprocess.call(with_libc + ["-static"]) == 0:
        return
    print("warning: static link of minipod-pause failed (no static libc?); "
          "building it dynamically", file=sys.stderr)
    subprocess.check_call(with_libc)


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
