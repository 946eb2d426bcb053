"""The three cgroupfs operations that are not ordinary file IO.

On cgroupfs ``mkdir`` makes a cgroup and fills it with interface files,
``rmdir`` removes a cgroup together with those files, and a write is a command
to the kernel (``+memory`` enables a controller, a pid moves a process), not
a replacement of the file's text. The rest of the package reads files
normally and does every mkdir/rmdir/write through this module, so that unit
tests can substitute a small simulation of those semantics on a temp dir.
"""

from __future__ import annotations

import os


def mkdir(path: str) -> None:
    """Create the cgroup directory ``path`` (its parent must exist)."""
    os.mkdir(path, 0o755)


def rmdir(path: str) -> None:
    """Remove the cgroup directory ``path``; EBUSY while it holds processes."""
    os.rmdir(path)


def write(path: str, text: str) -> None:
    """Write ``text`` to an existing cgroup file in one ``write(2)``, the way
    the kernel expects a command (never creates the file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
