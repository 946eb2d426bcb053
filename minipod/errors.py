"""The exceptions minipod raises.

Every error a user can cause or meet is a ``MinipodError``; the CLI prints it
as one line (``error: …``) and exits non-zero. Kernel failures keep their
errno and name the operation and the path they were about.
"""

from __future__ import annotations

import errno as _errno
import os


class MinipodError(Exception):
    """Base of every error minipod reports to users."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class SpecError(MinipodError):
    """A manifest is not valid. ``problems`` holds one line per error, each
    starting with its field path."""

    def __init__(self, problems: list[str] | str, *, source: str | None = None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = prefix + self.problems[0]
        else:
            message = prefix + f"{len(self.problems)} errors:\n  " + "\n  ".join(self.problems)
        super().__init__(message)


class ImageError(MinipodError):
    """An image is missing, malformed or cannot be stored."""


class NetworkError(MinipodError):
    """Pod networking could not be set up or torn down."""


class CgroupError(MinipodError):
    """A cgroup could not be created, joined, limited or removed."""


class StateError(MinipodError):
    """The pod's recorded state does not allow the request (unknown pod,
    name taken, pod still running…)."""


class NotRootError(MinipodError):
    """minipod changes namespaces, mounts and cgroups: it needs root."""

    def __init__(self, what: str = "minipod"):
        super().__init__(f"{what} needs root (namespaces, mounts and cgroups): run it with sudo")


class KernelError(MinipodError, OSError):
    """A system call failed. Keeps ``errno`` and names the operation and the
    path, e.g. ``mount overlay on /var/lib/minipod/…: No such device``."""

    def __init__(self, operation: str, err: int, path: str | None = None):
        self.operation = operation
        self.path = path
        strerror = os.strerror(err) if err else "unknown error"
        where = f" {path}" if path else ""
        MinipodError.__init__(self, f"{operation}{where}: {strerror}")
        self.errno = err
        self.strerror = strerror
        self.filename = path

    def __str__(self) -> str:
        # OSError's own formatting ("[Errno 19] …") would win otherwise.
        return self.args[0]

    @classmethod
    def from_oserror(cls, operation: str, exc: OSError, path: str | None = None) -> "KernelError":
        return cls(operation, exc.errno or _errno.EIO, path or exc.filename)


class SpawnError(KernelError):
    """A step of a native spawn plan failed in the child before ``execve``.

    ``step`` is the index of the failed operation in the plan and ``op`` the
    operation itself, so the message says exactly what could not be done."""

    def __init__(self, step: int, op: object, err: int):
        self.step = step
        self.op = op
        describe = getattr(op, "describe", None)
        text = describe() if callable(describe) else repr(op)
        KernelError.__init__(self, f"step {step} ({text})", err)
