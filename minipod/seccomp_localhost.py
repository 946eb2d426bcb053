"""seccomp ``Localhost`` profiles on this host: where they live, reading one
safely, a per-process cache of what they compile to, and the check that
``run`` makes before anything exists.

As kubelet reads them from ``<root-dir>/seccomp/``, minipod reads them from
``/var/lib/minipod/seccomp/`` (under ``--root``): ``localhostProfile`` is a
path relative to that directory. Validation refuses absolute paths and
'..'; a symbolic link that leads outside the directory is refused here.

A profile is read (and compiled, if it changed) each time a container
starts, as kubelet does, so an edited profile applies at the next start or
restart; ``exec`` gets the filter its container got, kept in the record.
"""

from __future__ import annotations

import os
import stat
import sys

from .errors import SpecError

# seccomp_profile (and libseccomp) load only when a pod uses a Localhost
# profile: ``run`` checks every pod here.

CACHE_SIZE = 64  # compiled filters kept per process: (file version, capability set) pairs
_compiled: dict[tuple, bytes] = {}


def profile_path(seccomp_dir: str, name: str) -> str:
    """The real path of profile ``name``; refuses one that resolves outside
    ``seccomp_dir`` (through a symbolic link) or does not exist."""
    from .seccomp_profile import ProfileError

    given = os.path.join(seccomp_dir, name)
    top = os.path.realpath(seccomp_dir)
    real = os.path.realpath(given)
    if os.path.commonpath([top, real]) != top or real == top:
        raise ProfileError(given, "", f"leads outside {seccomp_dir} (to {real}); "
                                      "a Localhost profile must be a file in that directory")
    if not os.path.exists(real):
        raise ProfileError(given, "", f"no such profile (Localhost profiles are read from {seccomp_dir})")
    return real


def localhost_filter(seccomp_dir: str, name: str, caps: int) -> bytes:
    """The BPF program of profile ``name`` for a container whose capability
    (bounding) set is ``caps``. Compiled once per (file, mtime, size, caps)
    in a process; raises ProfileError naming the file and the field."""
    from .seccomp_profile import ProfileError

    path = profile_path(seccomp_dir, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise ProfileError(path, "", f"cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        key = (path, st.st_ino, st.st_mtime_ns, st.st_size, caps)
        program = _compiled.get(key)
        if program is None:
            if not stat.S_ISREG(st.st_mode):
                raise ProfileError(path, "", "is not a regular file")
            program = _compile(path, _read_all(fd, st.st_size), caps)
            if len(_compiled) >= CACHE_SIZE:
                _compiled.clear()
            _compiled[key] = program
        return program
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, max(size, 65536))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _compile(path: str, text: bytes, caps: int) -> bytes:
    from .libseccomp import compile_profile
    from .seccomp_profile import parse_profile

    profile = parse_profile(text, path)
    compiled = compile_profile(profile, caps)
    warnings = list(profile.warnings)
    if profile.unapplied_flags():
        warnings.append(f"seccomp profile {path}: flags {', '.join(profile.unapplied_flags())} not applied: "
                        "minipod installs a filter with prctl(PR_SET_SECCOMP), which takes no flags")
    if warnings:
        import logging  # only now: ``run`` must not pay its import for every pod

        for warning in warnings:
            logging.getLogger(__name__).warning("%s", warning)
    if "logging" in sys.modules:  # else nothing configured it: a debug line would be dropped
        sys.modules["logging"].getLogger(__name__).debug(
            "%s: %d BPF instructions for capabilities %#x", path, compiled.instructions, caps)
    return compiled.program


def check_pod_profiles(pod: dict, seccomp_dir: str) -> None:
    """Read and compile every Localhost profile a pod's containers use, as
    their start will: a missing file, bad JSON, an unsupported action… is a
    SpecError with the manifest field and the profile's own field, before
    anything exists on the host."""
    from .capabilities import container_caps
    from .container import seccomp_profile_of

    spec = pod["spec"]
    pod_sc = spec.get("securityContext") or {}
    problems: list[str] = []
    for kind in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(kind) or []):
            sc = container.get("securityContext") or {}
            profile, where = seccomp_profile_of(pod_sc, sc, f"spec.{kind}[{i}]")
            if profile.get("type") != "Localhost" or sc.get("privileged"):
                continue  # a privileged container is never filtered
            from .seccomp_profile import ProfileError

            try:
                localhost_filter(seccomp_dir, profile["localhostProfile"], container_caps(sc))
            except ProfileError as exc:
                problem = f"{where}.localhostProfile: {exc}"
                if problem not in problems:  # the pod's profile, shared by its containers
                    problems.append(problem)
    if problems:
        raise SpecError(problems)
