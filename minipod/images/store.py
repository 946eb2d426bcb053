"""The local image store, following the OCI image data model.

Layout under ``images_dir`` (Config.images_dir):

* ``blobs/sha256/<hex>``: manifests, configs and layer blobs (blobs.py);
* ``layers/<diff-id hex>/``: layers unpacked once, used as overlay lower
  dirs, with their markers ``layers/<hex>.json`` (layers.py);
* ``index.json``: normalised reference -> manifest digest (+ config digest),
  replaced atomically under an flock on ``lock``;
* ``gc.lock``: writers hold it shared while they add blobs and layers that no
  reference points to yet; garbage collection holds it exclusively, so it
  never deletes what a running ``add_image`` or pull is about to tag. GC
  also keeps the layers that pods use although no image names them any more
  (``image rm -f``): the store knows no pods, so its caller says which;
* ``tmp/``: scratch files of writers (an import's tar of a directory).

An image is ``manifest -> config blob + layer blobs``; its ID is the config
digest, as with Docker.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from typing import Iterable, Iterator

from minipod.errors import ImageError
from minipod.images import compression as comp
from minipod.images.blobs import BlobStore, check_digest
from minipod.images.gc import GcReport, KeepLayers
from minipod.images.layers import LayerStore, write_json_atomically
from minipod.images.reference import parse_reference



def _log():
    # Imported when something is logged (writes, damaged images), not at
    # import time: ``run`` resolves its images on every start.
    import logging

    return logging.getLogger("minipod.images.store")


MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
INDEX_SCHEMA_VERSION = 1

_ID_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")
# A bare hex string this long that is no known name is taken as an ID prefix
# (Docker accepts short IDs such as the 12 digits ``image ls`` prints).
_MIN_SHORT_ID = 4
_HEX64_RE = re.compile(r"^[a-f0-9]{64}$")




class Image:
    """An image in the store, as found under one reference.

    ``ref``: the normalised reference it was found under; ``id``:
    ``sha256:<config digest hex>``; ``digest``: the manifest digest;
    ``config``: the OCI config's "config" object (Env, Entrypoint, Cmd…);
    ``layer_dirs``: unpacked layer directories, bottom first; ``size``: bytes
    of the layer blobs; ``config_document``: the whole OCI config. Equality
    ignores ``manifest`` and ``config_document``. (A plain class: ``run``
    loads this module, and ``dataclasses`` would cost it milliseconds.)"""

    _COMPARED = ("ref", "id", "digest", "config", "layer_dirs", "size", "created", "diff_ids",
                 "architecture", "os")
    _SHOWN = ("ref", "id", "digest", "config", "layer_dirs", "size", "created", "architecture", "os")

    def __init__(self, ref: str, id: str, digest: str, config: dict, layer_dirs: list[str], size: int,
                 created: str | None, diff_ids: list[str] | None = None, architecture: str | None = None,
                 os: str | None = None, manifest: dict | None = None, config_document: dict | None = None):
        self.ref = ref
        self.id = id
        self.digest = digest
        self.config = config
        self.layer_dirs = layer_dirs
        self.size = size
        self.created = created
        self.diff_ids = [] if diff_ids is None else diff_ids
        self.architecture = architecture
        self.os = os
        self.manifest = {} if manifest is None else manifest
        self.config_document = {} if config_document is None else config_document

    def __eq__(self, other):
        if not isinstance(other, Image):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._COMPARED)

    __hash__ = None  # holds dicts and lists

    def __repr__(self) -> str:
        return "Image(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self._SHOWN) + ")"

    @property
    def familiar_ref(self) -> str:
        """The short form Docker prints: ``busybox:latest``."""
        return parse_reference(self.ref).familiar


class _LayerEntry:
    __slots__ = ("media_type", "digest", "size", "diff_id")

    def __init__(self, media_type: str, digest: str, size: int, diff_id: str):
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.diff_id = diff_id

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def canonical_json(data) -> bytes:
    """The bytes minipod stores for a JSON document: sorted keys, no spaces,
    so the same content always has the same digest."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _not_found(ref: str) -> ImageError:
    return ImageError(
        f'image "{ref}" not found in the local store',
        hint=f"import one with: minipod image import DIR {ref}",
    )


def _diff_id_mismatch(what: str, expected: str, got: str) -> ImageError:
    return ImageError(f"{what}: content does not match its diff ID: expected {expected}, got {got}")


class ImageStore:
    """The content-addressed image store in ``images_dir``. Creates nothing
    until a write."""

    def __init__(self, images_dir: str | os.PathLike):
        self.images_dir = os.path.abspath(os.fspath(images_dir))
        self.blobs = BlobStore(os.path.join(self.images_dir, "blobs", "sha256"))
        self.layers = LayerStore(os.path.join(self.images_dir, "layers"))
        self.index_path = os.path.join(self.images_dir, "index.json")
        self.lock_path = os.path.join(self.images_dir, "lock")
        self.gc_lock_path = os.path.join(self.images_dir, "gc.lock")
        self.tmp_dir = os.path.join(self.images_dir, "tmp")

    @classmethod
    def from_config(cls, config) -> "ImageStore":
        """The store of a minipod.config.Config."""
        return cls(config.images_dir)

    # ----- reading

    def resolve(self, ref: str) -> Image:
        """The image named ``ref`` (any form Docker accepts: ``busybox``,
        ``name@sha256:…``), or an image ID / unique ID prefix."""
        refs = self._read_index()
        key, _ = self._find(ref, refs)
        return self._load(key, refs[key])

    def images(self) -> list[Image]:
        """One Image per reference, sorted by reference. Images that cannot
        be read are left out with a warning (``remove`` still works on them)."""
        found = []
        for key, entry in sorted(self._read_index().items()):
            try:
                found.append(self._load(key, entry))
            except ImageError as exc:
                _log().warning("skipping image %s: %s", key, exc)
        return found

    # ----- writing

    def add_image(self, config: dict | bytes, layer_tar_paths: list[str], ref: str, *, consume: bool = False) -> Image:
        """Store an image made of ``layer_tar_paths`` (bottom first; plain tar,
        gzip or zstd are stored as they are, xz and bzip2 decompressed since
        OCI has no media type for them), with ``config`` as its OCI config,
        and tag it ``ref``. Layers are unpacked unless already present.

        ``config`` may be a dict, whose ``rootfs`` is filled in with the diff
        IDs, or the exact bytes of a config blob (pull and load keep the
        image ID that way); any diff IDs it holds must match the layers.
        ``consume=True`` lets the store move the layer files into place
        instead of copying them (the caller's temporary files)."""
        key = str(parse_reference(ref))  # refuse a bad name before writing anything
        document, raw_config = self._config_document(config)
        expected_diff_ids = self._given_diff_ids(document, len(layer_tar_paths))
        kinds = []
        for i, path in enumerate(layer_tar_paths):
            if not os.path.isfile(path):
                raise ImageError(f"layer {i + 1} ({path}): no such file")
            kinds.append(comp.detect_file_compression(path))
            comp.require_support(kinds[-1], f"layer {i + 1} ({path})")
        self._ensure_dirs()
        with self.writing():
            layers = [
                self._add_layer(path, kind, f"layer {i + 1} ({path})",
                                expected_diff_ids[i] if expected_diff_ids else None, consume)
                for i, (path, kind) in enumerate(zip(layer_tar_paths, kinds))
            ]
            if raw_config is None:
                document["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
                raw_config = canonical_json(document)
            entry = self._write_image(raw_config, layers, key)
        return self._load(key, entry)

    def add_stored_layers(self, raw_config: bytes, layers: list[dict], ref: str) -> Image:
        """Tag ``ref`` as an image made of layers already in the store: each
        of ``layers`` is {digest, size, diff_id, compression} of a blob and
        its unpacked layer, both present (pull puts them there itself, in
        one pass, inside ``writing()``). The config's diff IDs must be the
        layers'."""
        key = str(parse_reference(ref))
        document, _ = self._config_document(raw_config)
        if self._given_diff_ids(document, len(layers)) != [layer["diff_id"] for layer in layers]:
            raise ImageError("image config: its diff IDs are not those of the layers")
        entries = []
        for i, layer in enumerate(layers):
            if not self.blobs.exists(layer["digest"]) or not self.layers.has(layer["diff_id"]):
                raise ImageError(f"layer {i + 1} ({layer['digest']}) is not in the store")
            entries.append(_LayerEntry(comp.LAYER_MEDIA_TYPES[layer["compression"]], layer["digest"],
                                       layer["size"], layer["diff_id"]))
        with self.writing():
            entry = self._write_image(bytes(raw_config), entries, key)
        return self._load(key, entry)

    def _write_image(self, raw_config: bytes, layers: list, key: str) -> dict:
        """Store the config and a manifest of ``layers``, then point ``key``
        at them; returns the index entry."""
        config_digest = self.blobs.write_bytes(raw_config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": len(raw_config)},
            "layers": [layer.descriptor() for layer in layers],
        }
        manifest_digest = self.blobs.write_bytes(canonical_json(manifest))
        entry = {"digest": manifest_digest, "config": config_digest}
        with self._index_lock():
            refs = self._read_index()
            refs[key] = entry
            self._write_index(refs)
        _log().debug("tagged %s -> %s", key, manifest_digest)
        return entry

    def remove(self, ref: str, *, keep_layers: KeepLayers = None) -> list[str]:
        """Remove the reference ``ref`` (or, given an image ID, every
        reference to that image), then collect blobs and layers no image uses
        any more. Returns the references removed.

        The store does not know about containers: callers refuse to remove
        an image a pod was made from, or pass the diff IDs that pods still
        use as ``keep_layers`` (see ``gc``)."""
        self._find(ref, self._read_index())  # not found: fail before creating anything
        with self._index_lock():
            refs = self._read_index()
            key, by_id = self._find(ref, refs)
            if by_id:
                doomed = sorted(k for k, e in refs.items() if e.get("config") == refs[key].get("config"))
            else:
                doomed = [key]
            for name in doomed:
                del refs[name]
            self._write_index(refs)
        _log().debug("untagged %s", ", ".join(doomed))
        # Never wait for a running import: what it leaves is collected next time.
        self.gc(wait=False, keep_layers=keep_layers)
        return doomed

    def prune(self, *, keep_layers: KeepLayers = None, unused_images: bool = False,
              used_image_ids: Iterable[str] = ()) -> tuple[list[str], GcReport]:
        """``image prune``: collect what no image references and no pod uses
        (``keep_layers``, see ``gc``), waiting for writers (a pull in
        progress) to finish first. With ``unused_images``, first untag every
        image whose ID is not in ``used_image_ids`` (docker's ``-a``).
        Returns the references removed and what GC removed."""
        untagged: list[str] = []
        if unused_images and os.path.isfile(self.index_path):
            used = set(used_image_ids)
            with self._index_lock():
                refs = self._read_index()
                untagged = sorted(k for k, e in refs.items() if e.get("config") not in used)
                for key in untagged:
                    del refs[key]
                if untagged:
                    self._write_index(refs)
            _log().debug("untagged %s", ", ".join(untagged))
        return untagged, self.gc(wait=True, keep_layers=keep_layers)

    def gc(self, *, wait: bool = True, keep_layers: KeepLayers = None) -> GcReport:
        """Delete blobs and layers that no reference uses, and temporaries of
        writers that died. With ``wait=False`` it gives up at once when a
        writer is busy. ``keep_layers``: diff IDs of layers to keep although
        no image names them (pods made from an image removed with ``-f``
        still have them as their lower dirs), or a function returning them,
        called once the GC lock is held. See gc.py."""
        from minipod.images.gc import collect

        return collect(self, wait=wait, keep_layers=keep_layers)

    def layer_diff_id(self, path: str) -> str | None:
        """The diff ID of the layer directory ``path`` (as an Image's
        ``layer_dirs`` give it), or None when it is not a layer of this store."""
        path = os.path.abspath(path)
        if os.path.dirname(path) != self.layers.directory:
            return None
        name = os.path.basename(path)
        return "sha256:" + name if _HEX64_RE.match(name) else None

    @contextmanager
    def collecting(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold while collecting garbage: no writer is active meanwhile.
        Yields False (and holds nothing) when ``wait`` is False and a writer
        is busy."""
        with self._flock(self.gc_lock_path, fcntl.LOCK_EX, blocking=wait) as locked:
            yield locked

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while writing blobs, layers or ``tmp/`` files that no
        reference points to yet, so that GC leaves them alone."""
        self._ensure_dirs()
        with self._flock(self.gc_lock_path, fcntl.LOCK_SH):
            yield

    def temp_dir(self) -> str:
        """A scratch directory on the store's filesystem (so files made there
        can be renamed into the store); only use it inside ``writing()``."""
        self._ensure_dirs()
        return self.tmp_dir

    # ----- helpers: references

    @staticmethod
    def _looks_like_id(ref: str) -> bool:
        return bool(_ID_RE.match(ref)) and (ref.startswith("sha256:") or len(ref) >= _MIN_SHORT_ID)

    def _find(self, ref: str, refs: dict) -> tuple[str, bool]:
        """The index key ``ref`` names, looked up as a reference first, then
        as an image ID; and whether it was found by ID."""
        if not isinstance(ref, str) or not ref:
            raise ImageError("an image reference is required")
        if ref.startswith("sha256:") or re.fullmatch(r"[a-f0-9]{64}", ref):
            return self._find_by_id(ref, refs), True
        try:
            parsed = parse_reference(ref)
        except ImageError:
            if self._looks_like_id(ref):
                return self._find_by_id(ref, refs), True
            raise
        key = str(parsed)
        if key in refs:
            return key, False
        if parsed.digest:
            # "name@digest" also finds the same manifest tagged under that name.
            for other in sorted(refs):
                if refs[other].get("digest") == parsed.digest and parse_reference(other).name == parsed.name:
                    return other, False
        if self._looks_like_id(ref):
            return self._find_by_id(ref, refs), True
        raise _not_found(ref)

    def _find_by_id(self, ref: str, refs: dict) -> str:
        match = _ID_RE.match(ref)
        if not match:
            raise _not_found(ref)
        prefix = "sha256:" + match.group(1)
        ids = {entry.get("config") for entry in refs.values() if str(entry.get("config", "")).startswith(prefix)}
        if not ids:
            raise _not_found(ref)
        if len(ids) > 1:
            raise ImageError(f'image ID "{ref}" is ambiguous: it matches {len(ids)} images')
        image_id = ids.pop()
        return sorted(k for k, e in refs.items() if e.get("config") == image_id)[0]

    # ----- helpers: documents

    @staticmethod
    def _config_document(config) -> tuple[dict, bytes | None]:
        if isinstance(config, (bytes, bytearray)):
            try:
                document = json.loads(config)
            except ValueError as exc:
                raise ImageError(f"image config is not valid JSON: {exc}") from None
            raw = bytes(config)
        else:
            import copy  # only image writes get here

            document, raw = copy.deepcopy(config), None
        if not isinstance(document, dict):
            raise ImageError("image config must be a JSON object")
        return document, raw

    @staticmethod
    def _given_diff_ids(document: dict, layer_count: int) -> list[str] | None:
        rootfs = document.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not diff_ids:
            return None
        if not isinstance(diff_ids, list) or len(diff_ids) != layer_count:
            raise ImageError(f"image config lists {len(diff_ids)} diff IDs for {layer_count} layers")
        for diff_id in diff_ids:
            check_digest(diff_id)
        return diff_ids

    def _add_layer(self, path: str, kind: str, what: str, expected_diff_id: str | None, consume: bool) -> _LayerEntry:
        if kind in (comp.XZ, comp.BZIP2):
            with comp.open_decompressed(path, kind, what) as stream, comp.decompression_errors(what):
                digest, size = self.blobs.write_stream(stream)
            kind = comp.NONE
        else:
            digest, size = self.blobs.add_file(path, move=consume)
        blob_path = self.blobs.path(digest)
        if kind == comp.NONE:
            diff_id = digest
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise _diff_id_mismatch(what, expected_diff_id, diff_id)
            if not self.layers.has(diff_id):
                self.layers.unpack(blob_path, kind, what=what, expected_diff_id=diff_id)
        elif expected_diff_id is not None and self.layers.has(expected_diff_id):
            diff_id = expected_diff_id
            if digest not in self.layers.known_blobs(diff_id):  # never paired: check they belong together
                with comp.open_decompressed(blob_path, kind, what) as stream, comp.decompression_errors(what):
                    got, _ = comp.sha256_of_stream(stream)
                if got != expected_diff_id:
                    raise _diff_id_mismatch(what, expected_diff_id, got)
                self.layers.add_known_blob(diff_id, digest)
        else:
            # The diff ID comes out of the unpack itself: one decompression.
            diff_id = self.layers.unpack(blob_path, kind, what=what, expected_diff_id=expected_diff_id,
                                         blob=digest)
        return _LayerEntry(comp.LAYER_MEDIA_TYPES[kind], digest, size, diff_id)

    def _load(self, key: str, entry: dict) -> Image:
        try:
            manifest_digest = entry["digest"]
            manifest = json.loads(self.blobs.read(manifest_digest))
            config_digest = manifest["config"]["digest"]
            document = json.loads(self.blobs.read(config_digest))
            diff_ids = list(document["rootfs"]["diff_ids"])
            size = sum(int(layer["size"]) for layer in manifest["layers"])
        except (KeyError, TypeError, ValueError, ImageError) as exc:
            detail = exc if isinstance(exc, ImageError) else f"malformed manifest or config ({exc!r})"
            raise ImageError(
                f'image "{key}" is damaged: {detail}',
                hint=f"remove it (minipod image rm {key}) and import or pull it again",
            ) from None
        layer_dirs = []
        for diff_id in diff_ids:
            if not self.layers.has(diff_id):
                raise ImageError(
                    f'image "{key}" is damaged: layer {diff_id} is missing',
                    hint=f"remove it (minipod image rm {key}) and import or pull it again",
                )
            layer_dirs.append(self.layers.path(diff_id))
        history = document.get("history") or []
        created = document.get("created") or next(
            (h.get("created") for h in reversed(history) if isinstance(h, dict) and h.get("created")), None
        )
        return Image(
            ref=key,
            id=config_digest,
            digest=manifest_digest,
            config=document.get("config") or {},
            layer_dirs=layer_dirs,
            size=size,
            created=created,
            diff_ids=diff_ids,
            architecture=document.get("architecture"),
            os=document.get("os"),
            manifest=manifest,
            config_document=document,
        )

    def referenced(self) -> tuple[set[str], set[str]]:
        """The blobs and the layers (diff IDs) that the images in the index
        use. ImageError when an image cannot be read: then nobody knows what
        it needs, and GC must delete nothing."""
        return self._referenced(self._read_index())

    def _referenced(self, refs: dict) -> tuple[set[str], set[str]]:
        blobs: set[str] = set()
        layers: set[str] = set()
        for key, entry in refs.items():
            try:
                manifest = json.loads(self.blobs.read(entry["digest"]))
                config_digest = manifest["config"]["digest"]
                document = json.loads(self.blobs.read(config_digest))
                blobs.update([entry["digest"], config_digest])
                blobs.update(layer["digest"] for layer in manifest["layers"])
                layers.update(document["rootfs"]["diff_ids"])
            except (KeyError, TypeError, ValueError, ImageError) as exc:
                # Not knowing what an image uses, delete nothing rather than
                # something it needs.
                raise ImageError(f'cannot read image "{key}": {exc}') from None
        return blobs, layers

    # ----- helpers: files and locks

    def _ensure_dirs(self) -> None:
        # The store holds other people's images: root only, like /var/lib/docker.
        os.makedirs(self.images_dir, mode=0o700, exist_ok=True)
        for directory in (self.blobs.directory, self.layers.directory, self.tmp_dir):
            os.makedirs(directory, mode=0o755, exist_ok=True)

    def _read_index(self) -> dict:
        try:
            with open(self.index_path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ImageError(f"image index {self.index_path} is unreadable: {exc}") from None
        refs = data.get("refs") if isinstance(data, dict) else None
        if not isinstance(refs, dict):
            raise ImageError(f"image index {self.index_path} is malformed: no refs")
        return refs

    def _write_index(self, refs: dict) -> None:
        write_json_atomically(self.index_path, {"schemaVersion": INDEX_SCHEMA_VERSION, "refs": refs})

    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        self._ensure_dirs()
        with self._flock(self.lock_path, fcntl.LOCK_EX):
            yield

    @staticmethod
    @contextmanager
    def _flock(path: str, operation: int, *, blocking: bool = True) -> Iterator[bool]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, operation if blocking else operation | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)
