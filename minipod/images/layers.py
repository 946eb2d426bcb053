"""Unpacked layers: ``layers/<diff-id hex>/``, each unpacked once, shared by
every image that uses it, and used as it is as an overlayfs lower dir.

A layer is unpacked into a temporary directory beside its final place. Only
when that succeeded is its marker ``layers/<hex>.json`` written and the
directory renamed into place; the rename is the commit, so a layer that
exists (directory and marker) is complete. Two processes unpacking the same
layer both finish; the second rename fails because the directory is there,
and the loser throws its copy away. The marker also records what could not
be made in overlay's form without root (see unpack.UnpackResult), since the
layer directory itself must hold nothing but the layer's content.
"""

from __future__ import annotations

import errno
import json
import os
import re

from minipod.errors import ImageError
from minipod.images.blobs import TEMP_PREFIX, check_digest
from minipod.images.compression import open_decompressed


def _log():
    # logging, shutil and tempfile are imported where used: ``run`` reads
    # layers without writing, logging or deleting anything.
    import logging

    return logging.getLogger("minipod.images.layers")


_HEX_RE = re.compile(r"^[a-f0-9]{64}$")


class LayerStore:
    """The directories under ``<images_dir>/layers``."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, diff_id: str) -> str:
        """The layer's directory (whether or not it exists)."""
        return os.path.join(self.directory, check_digest(diff_id))

    def marker_path(self, diff_id: str) -> str:
        return self.path(diff_id) + ".json"

    def has(self, diff_id: str) -> bool:
        return os.path.isdir(self.path(diff_id)) and os.path.isfile(self.marker_path(diff_id))

    def metadata(self, diff_id: str) -> dict:
        """The layer's marker: diff_id, size, and the non-root fallbacks
        (opaque_fallback, whiteout_fallback, skipped)."""
        try:
            with open(self.marker_path(diff_id)) as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise ImageError(f"layer {diff_id}: cannot read its marker: {exc}") from None

    def diff_ids(self) -> list[str]:
        """Every layer directory present (complete or not)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + name for name in names if _HEX_RE.match(name))

    def unpack(self, blob_path: str, compression: str, *, what: str, expected_diff_id: str | None = None) -> str:
        """Unpack the blob at ``blob_path`` (compressed as ``compression``)
        unless its layer exists; return its diff ID. With
        ``expected_diff_id``, a mismatch keeps nothing and raises ImageError."""
        from minipod.images.unpack import unpack_layer  # noqa: PLC0415 - lazy: tarfile is only for writes

        import tempfile

        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.directory)
        try:
            with open_decompressed(blob_path, compression, what) as stream:
                result = unpack_layer(stream, tmp, what=what)
            if expected_diff_id is not None and result.diff_id != expected_diff_id:
                raise ImageError(
                    f"{what}: content does not match its diff ID: expected {expected_diff_id}, got {result.diff_id}"
                )
            if self.has(result.diff_id):
                _log().debug("layer %s was unpacked concurrently; keeping the other copy", result.diff_id)
            else:
                self._commit(tmp, result)
            return result.diff_id
        finally:
            if os.path.lexists(tmp):
                remove_tree(tmp)

    def _commit(self, tmp: str, result) -> None:
        marker = {
            "diff_id": result.diff_id,
            "size": result.size,
            "opaque_fallback": result.opaque_fallback,
            "whiteout_fallback": result.whiteout_fallback,
            "skipped": result.skipped,
        }
        # The marker goes first: the rename below is what makes the layer
        # exist, and it must never exist without its marker.
        write_json_atomically(self.marker_path(result.diff_id), marker)
        try:
            os.rename(tmp, self.path(result.diff_id))
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise ImageError(f"cannot store layer {result.diff_id}: {exc.strerror}") from None
            _log().debug("layer %s was unpacked concurrently; keeping the other copy", result.diff_id)

    def remove(self, diff_id: str) -> None:
        """Delete a layer: first move its directory out of the way (so it
        stops existing at once), then its marker, then the files."""
        import tempfile

        path = self.path(diff_id)
        if os.path.isdir(path):
            trash = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.directory)
            doomed = os.path.join(trash, "layer")
            os.rename(path, doomed)
        else:
            trash = None
        try:
            os.unlink(self.marker_path(diff_id))
        except FileNotFoundError:
            pass
        if trash:
            remove_tree(trash)

    def remove_temporaries(self) -> int:
        """Remove temporaries of writers that died, and markers without a
        layer. Only safe while no writer can be active (GC lock held)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            path = os.path.join(self.directory, name)
            if name.startswith(TEMP_PREFIX):
                remove_tree(path)
                removed += 1
            elif name.endswith(".json") and _HEX_RE.match(name[:-5]) and not os.path.isdir(path[:-5]):
                os.unlink(path)
                removed += 1
        return removed


def write_json_atomically(path: str, data) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a
    rename, so readers see the old or the new content, never a mix."""
    import tempfile

    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_tree(path: str) -> None:
    """Remove a directory tree that the store made. Without root, a layer
    may hold read-only directories: make them writable (never through a
    symlink) and try again."""
    import shutil

    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
        return
    except PermissionError:
        if os.geteuid() == 0:
            raise
    os.chmod(path, 0o700)
    # Top-down: each directory is made searchable before os.walk enters it.
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            child = os.path.join(dirpath, name)
            if not os.path.islink(child):
                os.chmod(child, 0o700)
    shutil.rmtree(path)
