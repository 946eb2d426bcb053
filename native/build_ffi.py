"""cffi builder (API, out-of-line mode) for ``minipod._native``.

Used by setup.py (``cffi_modules``) and runnable by hand:
``python native/build_ffi.py`` builds the module next to the sources' package
(``minipod/_native*.so``). Only ``minipod/_sys.py`` imports the result.
"""

from __future__ import annotations

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "spawn.h")


def _header_declarations() -> str:
    """The declarations between the CDEF markers of spawn.h: one source of
    truth for the struct layout that C and Python share."""
    with open(HEADER, encoding="utf-8") as f:
        text = f.read()
    start = text.index("/* CDEF-BEGIN */") + len("/* CDEF-BEGIN */")
    end = text.index("/* CDEF-END */")
    return text[start:end]


# libc calls that Python 3.11's os module lacks; cffi releases the GIL
# around each and keeps errno in ffi.errno.
LIBC_DECLARATIONS = """
int setns(int fd, int nstype);
int unshare(int flags);
int mount(const char *source, const char *target, const char *filesystemtype,
          unsigned long mountflags, const void *data);
int umount2(const char *target, int flags);
int sethostname(const char *name, size_t len);
"""

def make_builder(project_root: str = "") -> FFI:
    """The FFI builder. Source paths are relative to the project root, as
    setuptools wants them (setup.py runs there); pass ``project_root`` to
    build from anywhere else."""
    builder = FFI()
    builder.cdef(_header_declarations() + LIBC_DECLARATIONS)
    builder.set_source(
        "minipod._native",
        """
        #ifndef _GNU_SOURCE  /* Python.h usually defines it already */
        #define _GNU_SOURCE
        #endif
        #include <sched.h>
        #include <sys/mount.h>
        #include <unistd.h>
        #include "spawn.h"
        """,
        sources=[os.path.join(project_root, "native", "spawn.c")],
        include_dirs=[os.path.join(project_root, "native")],
        depends=[os.path.join(project_root, "native", "spawn.h")],
        extra_compile_args=["-O2", "-Wall"],
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    # Build in place: minipod/_native*.so beside minipod/_sys.py, with the
    # generated C and object files kept out of the package.
    import shutil
    import tempfile

    root = os.path.dirname(HERE)
    with tempfile.TemporaryDirectory(prefix="minipod-ffi-") as tmp:
        built = make_builder(root).compile(tmpdir=tmp, verbose=True)
        shutil.copy(built, os.path.join(root, "minipod", os.path.basename(built)))
