"""``minipod image pull``: an image from an OCI/Docker registry.

The OCI distribution flow: ping ``/v2/`` (which also tells us how to log
in), get the manifest by tag or digest offering every manifest type we read,
pick this host's platform when it is an index (or Docker manifest list), then
fetch the config and the layer blobs, a few layers at a time.

Each layer goes through one pass: the bytes from the network are hashed and
written to a temporary blob file while they are decompressed (on one thread)
and unpacked (on another) into a temporary layer directory, with the diff ID
hashed on the way (download.py, layers.unpack_stream). Nothing is visible
until every blob matches its digest and every layer its diff ID: only then
are they renamed into place and the image tagged, so an interrupted or
failed pull leaves no image half-visible (its temporaries are removed, or
collected by the next GC).

A layer the store has is not downloaded again.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from minipod.errors import ImageError
from minipod.images.blobs import check_digest
from minipod.images.reference import Reference, parse_reference
from minipod.images.registry import RegistryClient, docker_config_credentials

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json",
                "application/vnd.docker.container.image.v1+json")
LAYER_TYPES = frozenset((
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
))

MAX_MANIFEST_BYTES = 4 << 20   # the spec's suggested limit for manifests
MAX_CONFIG_BYTES = 64 << 20
MAX_PARALLEL_LAYERS = 4        # what docker and containerd use by default


# ----- manifests (pure: unit-tested without a network)


def select_platform(index: dict, architecture: str, variant: str | None, os_name: str = "linux") -> dict:
    """The descriptor in ``index`` (OCI index or Docker manifest list) for
    this platform. An exact variant wins; an entry without variant fits any
    variant (and arm64's default variant is v8). ImageError lists the
    platforms there are when none fits."""
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise ImageError("image index has no manifests list")
    candidates = []
    for entry in manifests:
        plat = entry.get("platform") if isinstance(entry, dict) else None
        if not isinstance(plat, dict):
            continue
        if plat.get("os") != os_name or plat.get("architecture") != architecture:
            continue
        entry_variant = plat.get("variant")
        if architecture == "arm64" and entry_variant in (None, "v8"):
            score = 2
        elif entry_variant == variant:
            score = 2
        elif entry_variant is None:
            score = 1
        else:
            continue
        candidates.append((score, len(candidates), entry))
    if not candidates:
        available = sorted({_platform_name(e.get("platform")) for e in manifests
                            if isinstance(e, dict) and isinstance(e.get("platform"), dict)})
        wanted = _platform_name({"os": os_name, "architecture": architecture, "variant": variant})
        raise ImageError(f"no image for platform {wanted} (the index has: {', '.join(available) or 'none'})")
    candidates.sort(key=lambda c: (-c[0], c[1]))  # best score, then the index's order
    return candidates[0][2]


def _platform_name(plat: dict) -> str:
    name = f"{plat.get('os')}/{plat.get('architecture')}"
    return name + (f"/{plat['variant']}" if plat.get("variant") else "")


def manifest_media_type(document: dict, content_type: str | None) -> str:
    """The manifest's type from its own mediaType, else the HTTP
    Content-Type, else its shape (OCI allows leaving mediaType out)."""
    media_type = document.get("mediaType") or (content_type or "").split(";")[0].strip()
    if media_type in INDEX_TYPES + MANIFEST_TYPES:
        return media_type
    if media_type in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        raise ImageError("manifest is Docker schema 1, which is deprecated and not supported")
    if "manifests" in document:
        return OCI_INDEX
    if "layers" in document and "config" in document:
        return OCI_MANIFEST
    raise ImageError(f"unknown manifest media type {media_type or '(none)'}")


def check_image_manifest(manifest: dict) -> tuple[dict, list[dict]]:
    """The config and layer descriptors of an image manifest, checked:
    known media types, valid digests, sizes that are numbers."""
    config, layers = manifest.get("config"), manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise ImageError("image manifest has no config or no layers")
    for i, desc in enumerate([config] + layers):
        what = "config" if i == 0 else f"layer {i}"
        if not isinstance(desc, dict):
            raise ImageError(f"image manifest: {what} is not a descriptor")
        check_digest(desc.get("digest"))
        if not isinstance(desc.get("size"), int) or desc["size"] < 0:
            raise ImageError(f"image manifest: {what} has no valid size")
        media_type = desc.get("mediaType")
        known = CONFIG_TYPES if i == 0 else LAYER_TYPES
        if media_type not in known:
            raise ImageError(f"image manifest: {what} has an unknown media type {media_type!r}")
    return config, layers


def _sha256_digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----- progress


class Progress:
    """One line per layer, redrawn in place on a terminal (like ``docker
    pull``); silent when ``stream`` is not a terminal, so scripts and logs
    stay clean."""

    def __init__(self, stream=None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._lines: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drawn = 0

    def set(self, digest: str, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._lines[digest] = f"{digest.split(':')[-1][:12]}: {text}"
            self._draw()

    def _draw(self) -> None:
        out = "\x1b[1A" * self._drawn + "".join(f"\r\x1b[2K{line}\n" for line in self._lines.values())
        self.stream.write(out)
        self.stream.flush()
        self._drawn = len(self._lines)


# ----- pulling


def pull_image(store, ref: str, *, creds: tuple[str, str] | None = None, insecure: bool = False,
               progress: Progress | None = None, docker_config: str | None = None,
               parallel: int = MAX_PARALLEL_LAYERS, pull_secrets: list[dict] | None = None):
    """Pull ``ref`` into ``store`` and return the stored Image. ``creds``
    (user, password) wins over a pod's ``pull_secrets`` (its
    imagePullSecrets, see pullsecrets.py), which win over
    ``~/.docker/config.json`` (or ``docker_config``)."""
    reference = parse_reference(ref)
    if creds is None and pull_secrets:
        from minipod.images.pullsecrets import pull_credentials

        creds = pull_credentials(pull_secrets, reference.domain)
    if creds is None:
        creds = docker_config_credentials(reference.domain, docker_config)
    client = RegistryClient(reference.domain, reference.path, creds=creds, insecure=insecure)
    progress = progress or Progress(enabled=False)
    try:
        client.ping()
        manifest = _fetch_image_manifest(client, reference)
        config_desc, layer_descs = check_image_manifest(manifest)
        # GC leaves alone what this pull writes before the image is tagged.
        with store.writing():
            raw_config = _fetch_config(client, store, config_desc)
            diff_ids = config_diff_ids(raw_config, len(layer_descs))
            staged = _fetch_layers(client, store, layer_descs, diff_ids, progress, parallel)
            try:
                for layer in staged:  # every layer is verified: now they may exist
                    layer.commit(store)
                image = store.add_stored_layers(raw_config, [layer.record() for layer in staged], str(reference))
            finally:
                for layer in staged:
                    layer.discard()
        for desc in layer_descs:
            progress.set(desc["digest"], "Pull complete")
        return image
    finally:
        client.close()


def config_diff_ids(raw_config: bytes, layer_count: int) -> list[str]:
    """The diff IDs an image config lists, one per layer, checked: the
    unpacked layers are verified against them."""
    try:
        document = json.loads(raw_config)
        diff_ids = document["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise ImageError("image config has no rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != layer_count:
        raise ImageError(f"image config lists {len(diff_ids) if isinstance(diff_ids, list) else 'no'} "
                         f"diff IDs for {layer_count} layers")
    for diff_id in diff_ids:
        check_digest(diff_id)
    return diff_ids


def _fetch_image_manifest(client: RegistryClient, reference: Reference) -> dict:
    """The image manifest for ``reference`` on this host's platform."""
    target = reference.digest or reference.tag
    document, media_type = _fetch_manifest(client, target, reference.digest, f"manifest {target}")
    if media_type in INDEX_TYPES:
        from minipod.images.importer import host_platform

        architecture, variant = host_platform()
        chosen = select_platform(document, architecture, variant)
        digest = chosen.get("digest")
        check_digest(digest)
        document, media_type = _fetch_manifest(client, digest, digest,
                                               f"manifest {digest} ({_platform_name(chosen['platform'])})")
        if media_type in INDEX_TYPES:
            raise ImageError(f"manifest {digest}: an index inside an index is not supported")
    return document


def _fetch_manifest(client: RegistryClient, target: str, expected_digest: str | None, what: str) -> tuple[dict, str]:
    response = client.get(f"manifests/{target}", {"Accept": ACCEPT}, what=what)
    try:
        body = response.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"{what}: download failed: {exc}") from None
    finally:
        response.close()
    if len(body) > MAX_MANIFEST_BYTES:
        raise ImageError(f"{what}: larger than {MAX_MANIFEST_BYTES} bytes")
    if expected_digest and _sha256_digest(body) != expected_digest:
        raise ImageError(f"{what}: content does not match its digest (got {_sha256_digest(body)})")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ImageError(f"{what}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ImageError(f"{what}: not a JSON object")
    return document, manifest_media_type(document, response.headers.get("content-type"))


def _fetch_config(client: RegistryClient, store, desc: dict) -> bytes:
    digest = desc["digest"]
    if store.blobs.exists(digest):
        return store.blobs.read(digest)
    if desc["size"] > MAX_CONFIG_BYTES:
        raise ImageError(f"image config {digest} is too large ({desc['size']} bytes)")
    response = client.get(f"blobs/{digest}", what=f"config blob {digest}")
    try:
        body = response.read(desc["size"] + 1)
    except OSError as exc:
        raise ImageError(f"config blob {digest}: download failed: {exc}") from None
    finally:
        response.close()
    if _sha256_digest(body) != digest:
        raise ImageError(f"config blob {digest}: content does not match its digest "
                         f"(got {_sha256_digest(body)})")
    return body


class _StagedLayer:
    """One layer of a pull on its way into the store: its blob downloaded
    into a temporary file and its content unpacked into a temporary
    directory, both verified, neither visible until ``commit``."""

    def __init__(self, desc: dict, diff_id: str):
        self.desc = desc
        self.diff_id = diff_id
        self.compression: str | None = None
        self.blob_tmp: str | None = None    # None: the blob is in the store already
        self.layer_tmp: str | None = None   # None: the layer is in the store already
        self.result = None                  # the UnpackResult of layer_tmp
        self.verified_pairing = False       # the blob was checked to decompress to diff_id

    def commit(self, store) -> None:
        digest = self.desc["digest"]
        if self.blob_tmp is not None:
            store.blobs.commit(self.blob_tmp, digest)
            self.blob_tmp = None
        if self.result is not None:
            store.layers.commit(self.layer_tmp, self.result, blob=digest)
        elif self.verified_pairing:
            store.layers.add_known_blob(self.diff_id, digest)

    def record(self) -> dict:
        return {"digest": self.desc["digest"], "size": self.desc["size"], "diff_id": self.diff_id,
                "compression": self.compression}

    def discard(self) -> None:
        """Remove what is left of the temporaries (all of them unless committed)."""
        from minipod.images.layers import remove_tree

        if self.blob_tmp is not None:
            _unlink_quietly(self.blob_tmp)
            self.blob_tmp = None
        if self.layer_tmp is not None and os.path.lexists(self.layer_tmp):
            remove_tree(self.layer_tmp)
        self.layer_tmp = None


def _fetch_layers(client, store, descs: list[dict], diff_ids: list[str], progress: Progress,
                  parallel: int) -> list[_StagedLayer]:
    """Every layer staged (see _StagedLayer), bottom first, a few at a time.
    On any failure the others are cancelled, everything staged is removed,
    and the first error is raised."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    staged = [_StagedLayer(desc, diff_id) for desc, diff_id in zip(descs, diff_ids)]
    cancelled = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(staged) or 1)), thread_name_prefix="pull")
    futures = []
    try:
        futures = [pool.submit(_stage_layer, client, store, layer, progress, cancelled) for layer in staged]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()
    except BaseException:
        cancelled.set()  # the others stop at their next chunk (Ctrl-C too)
        for future in futures:
            future.cancel()
        wait(futures)
        for layer in staged:
            layer.discard()
        raise
    finally:
        pool.shutdown(wait=True)
    return staged


def _stage_layer(client, store, layer: _StagedLayer, progress: Progress, cancelled: threading.Event) -> None:
    """Fill in ``layer``: download, decompress, hash and unpack in one pass
    (download and decompression on one thread, the file writes on this one),
    skipping what the store has."""
    from minipod.images import compression as comp
    from minipod.images.download import BlobDownload
    from minipod.images.layers import check_diff_id

    digest = layer.desc["digest"]
    what = f"layer {digest}"
    have_blob, have_layer = store.blobs.exists(digest), store.layers.has(layer.diff_id)
    if have_blob:
        path = store.blobs.path(digest)
        layer.compression = comp.detect_file_compression(path)
        if have_layer and (digest == layer.diff_id or digest in store.layers.known_blobs(layer.diff_id)):
            progress.set(digest, "Already exists")
            return
        progress.set(digest, "Verifying" if have_layer else "Extracting")
        if have_layer:  # a blob and a layer never paired before: check that they belong together
            with comp.open_decompressed(path, layer.compression, what) as stream, comp.decompression_errors(what):
                got, _ = comp.sha256_of_stream(stream)
            check_diff_id(what, layer.diff_id, got)
            layer.verified_pairing = True
            return
        layer.layer_tmp = store.layers.temp_dir()
        with open(path, "rb") as raw:
            layer.result = store.layers.unpack_stream(raw, layer.compression, layer.layer_tmp, what=what,
                                                      pipeline=layer.compression != comp.NONE)
        check_diff_id(what, layer.diff_id, layer.result.diff_id)
        return
    layer.blob_tmp = store.blobs.temp_file()
    out = os.open(layer.blob_tmp, os.O_WRONLY | os.O_CLOEXEC)
    download = BlobDownload(client, layer.desc, out, progress=progress, cancelled=cancelled)
    try:
        layer.compression = comp.detect_compression(download.peek(10))
        if layer.compression not in comp.LAYER_MEDIA_TYPES:
            raise ImageError(f"{what} is {layer.compression}-compressed, which no layer media type allows")
        comp.require_support(layer.compression, what)
        try:
            if have_layer:  # only its diff ID to check: decompress and hash
                with comp.decompression_errors(what):
                    got, _ = comp.sha256_of_stream(comp.decompressing_reader(download, layer.compression, what))
                download.finish()
            else:
                layer.layer_tmp = store.layers.temp_dir()
                layer.result = store.layers.unpack_stream(download, layer.compression, layer.layer_tmp,
                                                          what=what)
                got = layer.result.diff_id
        except ImageError:
            if not cancelled.is_set() and not download.verified:
                download.finish()  # a wrong or short blob is the cause to report
            raise
        check_diff_id(what, layer.diff_id, got)
        layer.verified_pairing = True
    finally:
        download.close()
        os.close(out)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
