"""``minipod image load``: images from archives made by other tools.

Two shapes are understood, as directories or as tar files (plain or gzip):

* ``docker save``: a ``manifest.json`` listing, per image, its config file,
  its layer files (bottom first) and its RepoTags. Newer Docker writes an
  OCI layout next to it; ``manifest.json`` is read when it is there.
* an OCI image layout (``oci-layout`` + ``index.json`` + ``blobs/``): each
  image of ``index.json`` (an index in it is resolved to this host's
  platform), named by its ``io.containerd.image.name`` or
  ``org.opencontainers.image.ref.name`` annotation, or by ``ref``.

Layers go through ``ImageStore.add_image``, which checks them against the
config's diff IDs, so a damaged archive stores no image.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile

from minipod.errors import ImageError
from minipod.images.blobs import check_digest


def load_images(store, path: str, ref: str | None = None) -> list:
    """Load every image in the archive or directory ``path``; ``ref`` names
    the image when the archive names none (or overrides a single one).
    Returns the stored Images."""
    if os.path.isdir(path):
        return _load_dir(store, path, ref)
    if not os.path.isfile(path):
        raise ImageError(f"image load: {path}: no such file or directory")
    with store.writing():
        scratch = tempfile.mkdtemp(prefix="load-", dir=store.temp_dir())
        try:
            _extract(path, scratch)
            return _load_dir(store, scratch, ref, shown=path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _extract(path: str, dest: str) -> None:
    """Extract the archive inside ``dest`` and nowhere else: tarfile's
    ``data`` filter rejects absolute names, ``..``, links that point
    outside and device files. Pythons before 3.11.4 (Debian 12 has 3.11.2)
    have no filters: the same refusals are made here."""
    try:
        with tarfile.open(path, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest, members=_members_inside(tar, path))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageError(f"image load: {path} is not a readable tar archive: {exc}") from None


def _members_inside(tar: tarfile.TarFile, path: str) -> list[tarfile.TarInfo]:
    """The archive's entries, each checked as the ``data`` filter checks
    it: a relative name that stays inside, a link whose target does too,
    no device or FIFO; owners and special mode bits are not restored."""
    members = []
    for member in tar.getmembers():
        names = [member.name]
        if member.issym():
            names.append(os.path.join(os.path.dirname(member.name), member.linkname))
        elif member.islnk():
            names.append(member.linkname)
        for name in names:
            norm = os.path.normpath(name)
            if os.path.isabs(name) or norm == ".." or norm.startswith("../"):
                raise ImageError(f"image load: {path}: entry {member.name!r} would land outside the archive")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise ImageError(f"image load: {path}: entry {member.name!r} is a device or FIFO")
        member.mode &= 0o755
        member.uid = member.gid = 0
        member.uname = member.gname = "root"
        members.append(member)
    return members


def _load_dir(store, directory: str, ref: str | None, shown: str | None = None) -> list:
    shown = shown or directory
    if os.path.isfile(os.path.join(directory, "manifest.json")):
        return _load_docker_save(store, directory, ref, shown)
    if os.path.isfile(os.path.join(directory, "index.json")):
        return _load_oci_layout(store, directory, ref, shown)
    raise ImageError(f"image load: {shown} is neither a docker save archive (manifest.json) "
                     "nor an OCI image layout (index.json)")


def _inside(directory: str, name: str, shown: str) -> str:
    """``directory/name``, refusing names that climb out of it."""
    if not isinstance(name, str) or not name:
        raise ImageError(f"image load: {shown}: an entry names no file")
    path = os.path.realpath(os.path.join(directory, name))
    if not path.startswith(os.path.realpath(directory) + os.sep):
        raise ImageError(f"image load: {shown}: {name!r} points outside the archive")
    if not os.path.isfile(path):
        raise ImageError(f"image load: {shown}: {name} is missing")
    return path


def _read_json(path: str, shown: str):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ImageError(f"image load: {shown}: cannot read {os.path.basename(path)}: {exc}") from None


def _load_docker_save(store, directory: str, ref: str | None, shown: str) -> list:
    entries = _read_json(os.path.join(directory, "manifest.json"), shown)
    if not isinstance(entries, list) or not entries:
        raise ImageError(f"image load: {shown}: manifest.json lists no image")
    if ref and len(entries) > 1:
        raise ImageError(f"image load: {shown} holds {len(entries)} images: --name needs exactly one")
    loaded = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ImageError(f"image load: {shown}: malformed manifest.json entry")
        with open(_inside(directory, entry.get("Config"), shown), "rb") as f:
            config = f.read()
        layers = [_inside(directory, layer, shown) for layer in entry.get("Layers") or []]
        tags = [ref] if ref else list(entry.get("RepoTags") or [])
        if not tags:
            raise ImageError(f"image load: {shown}: an image has no RepoTags; name it with --name")
        for tag in tags:
            loaded.append(store.add_image(config, layers, tag))
    return loaded


def _load_oci_layout(store, directory: str, ref: str | None, shown: str) -> list:
    from minipod.images.pull import INDEX_TYPES, check_image_manifest, manifest_media_type, select_platform

    index = _read_json(os.path.join(directory, "index.json"), shown)
    descriptors = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descriptors, list) or not descriptors:
        raise ImageError(f"image load: {shown}: index.json lists no image")
    if ref and len(descriptors) > 1:
        raise ImageError(f"image load: {shown} holds {len(descriptors)} images: --name needs exactly one")
    loaded = []
    for desc in descriptors:
        name = ref or _annotated_name(desc)
        if not name:
            raise ImageError(f"image load: {shown}: an image carries no name annotation; name it with --name")
        document = _blob_json(directory, desc, shown)
        while manifest_media_type(document, desc.get("mediaType")) in INDEX_TYPES:
            from minipod.images.importer import host_platform

            desc = select_platform(document, *host_platform())
            document = _blob_json(directory, desc, shown)
        config_desc, layer_descs = check_image_manifest(document)
        with open(_blob_path(directory, config_desc["digest"], shown), "rb") as f:
            config = f.read()
        layers = [_blob_path(directory, layer["digest"], shown) for layer in layer_descs]
        loaded.append(store.add_image(config, layers, name))
    return loaded


def _annotated_name(desc: dict) -> str | None:
    annotations = desc.get("annotations") or {}
    name = annotations.get("io.containerd.image.name")
    if name:
        return name
    ref_name = annotations.get("org.opencontainers.image.ref.name") or ""
    # A bare tag ("1", "latest") names no repository; a full reference does.
    return ref_name if "/" in ref_name else None


def _blob_path(directory: str, digest: str, shown: str) -> str:
    hex_part = check_digest(digest)
    return _inside(directory, os.path.join("blobs", "sha256", hex_part), shown)


def _blob_json(directory: str, desc: dict, shown: str) -> dict:
    import hashlib

    path = _blob_path(directory, desc.get("digest"), shown)
    with open(path, "rb") as f:
        data = f.read()
    if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
        raise ImageError(f"image load: {shown}: blob {desc['digest']} does not match its digest")
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"image load: {shown}: manifest {desc['digest']} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ImageError(f"image load: {shown}: manifest {desc['digest']} is not a JSON object")
    return document
