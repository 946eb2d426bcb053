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
from typing import BinaryIO

from minipod.errors import ImageError
from minipod.images.blobs import TEMP_PREFIX, check_digest
from minipod.images.compression import CHUNK, NONE, decompressing_reader, decompression_errors


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

    def known_blobs(self, diff_id: str) -> list[str]:
        """Digests of the blobs this layer was verified to come from: a pull
        that finds both a blob and a layer in the store may only pair them
        without decompressing the blob when that pairing was checked before
        (else an image could claim another image's layer as its own)."""
        try:
            blobs = self.metadata(diff_id).get("blobs")
        except ImageError:
            return []
        return blobs if isinstance(blobs, list) else []

    def add_known_blob(self, diff_id: str, blob: str) -> None:
        """Record that ``blob`` decompresses to this layer (checked by the
        caller). Writers hold the store's writing lock; two of them adding
        at once may lose one entry, which only costs a check later."""
        try:
            marker = self.metadata(diff_id)
        except ImageError:
            return
        blobs = marker.get("blobs") if isinstance(marker.get("blobs"), list) else []
        if blob not in blobs:
            marker["blobs"] = blobs + [blob]
            write_json_atomically(self.marker_path(diff_id), marker)

    def diff_ids(self) -> list[str]:
        """Every layer directory present (complete or not)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + name for name in names if _HEX_RE.match(name))

    def unpack(self, blob_path: str, compression: str, *, what: str, expected_diff_id: str | None = None,
               blob: str | None = None) -> str:
        """Unpack the blob at ``blob_path`` (compressed as ``compression``;
        its digest ``blob``) unless its layer exists; return its diff ID.
        With ``expected_diff_id``, a mismatch keeps nothing and raises
        ImageError."""
        tmp = self.temp_dir()
        try:
            try:
                raw = open(blob_path, "rb")
            except OSError as exc:
                raise ImageError(f"cannot read {what}: {exc.strerror}") from None
            with raw:
                result = self.unpack_stream(raw, compression, tmp, what=what, pipeline=compression != NONE)
            check_diff_id(what, expected_diff_id, result.diff_id)
            self.commit(tmp, result, blob=blob)
            return result.diff_id
        finally:
            if os.path.lexists(tmp):
                remove_tree(tmp)

    def temp_dir(self) -> str:
        """A new directory beside the layers, to unpack one into (GC removes
        it if its writer dies; only use it inside ``ImageStore.writing()``)."""
        import tempfile

        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        return tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.directory)

    @staticmethod
    def unpack_stream(raw: BinaryIO, compression: str, target: str, *, what: str, pipeline: bool = True):
        """Unpack the layer that ``raw`` yields (compressed as
        ``compression``) into the empty directory ``target``; returns the
        UnpackResult. With ``pipeline``, reading and decompressing run on a
        second thread, handing chunks over, so that they overlap with the
        file writes (zlib and the file system calls release the GIL)."""
        from minipod.images.unpack import unpack_layer  # noqa: PLC0415 - lazy: tarfile is only for writes

        if not pipeline:
            with decompression_errors(what):
                stream = decompressing_reader(raw, compression, what)
                return unpack_layer(stream, target, what=what)
        from minipod.images.streams import ChunkPipe, run_producer

        def produce(put) -> None:
            with decompression_errors(what):
                stream = decompressing_reader(raw, compression, what)
                while chunk := stream.read(CHUNK):
                    put(chunk)
            while raw.read(CHUNK):  # whatever follows the compressed stream: the blob's digest covers it
                pass

        pipe = ChunkPipe()
        thread = run_producer(pipe, produce, "decompress")
        try:
            return unpack_layer(pipe, target, what=what)
        except BaseException:
            pipe.abandon()  # the producer stops at its next chunk
            raise
        finally:
            thread.join()

    def commit(self, tmp: str, result, *, blob: str | None = None) -> None:
        """Make the layer unpacked in ``tmp`` (a ``temp_dir()``) exist, unless
        another writer made it meanwhile; ``tmp`` is then left to the caller.
        ``blob``: the digest of the (compressed) blob it was verified to
        come from (see ``known_blobs``)."""
        if self.has(result.diff_id):
            _log().debug("layer %s was unpacked concurrently; keeping the other copy", result.diff_id)
            if blob is not None:
                self.add_known_blob(result.diff_id, blob)
            return
        marker = {
            "diff_id": result.diff_id,
            "size": result.size,
            "opaque_fallback": result.opaque_fallback,
            "whiteout_fallback": result.whiteout_fallback,
            "skipped": result.skipped,
            "blobs": [blob] if blob is not None else [],
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

    def remove_temporaries(self) -> tuple[int, int]:
        """Remove temporaries of writers that died, and markers without a
        layer; returns how many and their bytes on disk. Only safe while no
        writer can be active (GC lock held)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0, 0
        removed = freed = 0
        for name in names:
            path = os.path.join(self.directory, name)
            if name.startswith(TEMP_PREFIX):
                freed += disk_usage(path)
                remove_tree(path)
                removed += 1
            elif name.endswith(".json") and _HEX_RE.match(name[:-5]) and not os.path.isdir(path[:-5]):
                freed += disk_usage(path)
                os.unlink(path)
                removed += 1
        return removed, freed


def disk_usage(path: str) -> int:
    """Bytes ``path`` (a file or a tree, never following symlinks) takes on
    disk, each inode counted once, as ``du`` does: what removing it frees."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    total = st.st_blocks * 512
    if not os.path.isdir(path) or os.path.islink(path):
        return total
    seen = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def check_diff_id(what: str, expected: str | None, got: str) -> None:
    """ImageError unless the layer's diff ID is the one expected (if any)."""
    if expected is not None and got != expected:
        raise ImageError(f"{what}: content does not match its diff ID: expected {expected}, got {got}")


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
