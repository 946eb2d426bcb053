"""``minipod image pull``: an image from an OCI/Docker registry.

The OCI distribution flow: ping ``/v2/`` (which also tells us how to log
in), get the manifest by tag or digest offering every manifest type we read,
pick this host's platform when it is an index (or Docker manifest list), then
fetch the config and the layer blobs. Every blob is streamed to a temporary
file in the store and checked against its digest and size before anything
uses it; layers are fetched by a few threads at once. Only when all of them
are there does ``ImageStore.add_image`` unpack and tag the image, so an
interrupted or failed pull leaves no image half-visible (its temporaries are
removed, or collected by the next GC).

A layer blob already in the store is not downloaded again.
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
ATTEMPTS = 3                   # per blob; later attempts resume with Range


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


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}MB"


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
        with store.writing():
            temporaries: list[str] = []
            try:
                raw_config = _fetch_config(client, store, config_desc)
                paths = _fetch_layers(client, store, layer_descs, temporaries, progress, parallel)
                image = store.add_image(raw_config, paths, str(reference), consume=True)
            finally:
                for path in temporaries:
                    _unlink_quietly(path)
        for desc in layer_descs:
            progress.set(desc["digest"], "Pull complete")
        return image
    finally:
        client.close()


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


def _fetch_layers(client, store, descs: list[dict], temporaries: list[str], progress: Progress,
                  parallel: int) -> list[str]:
    """The local file of every layer, bottom first: the store's blob when it
    has it, else a verified download into the store's tmp dir (listed in
    ``temporaries`` for the caller to remove)."""
    import tempfile
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    paths: list[str | None] = [None] * len(descs)
    jobs = []
    for i, desc in enumerate(descs):
        if store.blobs.exists(desc["digest"]):
            paths[i] = store.blobs.path(desc["digest"])
            progress.set(desc["digest"], "Already exists")
            continue
        fd, tmp = tempfile.mkstemp(prefix="pull-", dir=store.temp_dir())
        os.close(fd)
        temporaries.append(tmp)
        paths[i] = tmp
        progress.set(desc["digest"], "Waiting")
        jobs.append((desc, tmp))
    if not jobs:
        return paths
    cancelled = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(jobs))), thread_name_prefix="pull") as pool:
        futures = [pool.submit(download_blob, client, desc, tmp, progress, cancelled) for desc, tmp in jobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            cancelled.set()  # the others stop at their next chunk
            for future in futures:
                future.cancel()
            wait(futures)
            raise failed.exception()
    return paths


def download_blob(client: RegistryClient, desc: dict, dest: str, progress: Progress | None = None,
                  cancelled: threading.Event | None = None) -> None:
    """Stream the blob ``desc`` into ``dest``, checking its sha256 and size.
    A transient failure (connection dropped, 5xx, 429) is retried, resuming
    with a Range request where the registry allows it. A mismatch truncates
    ``dest`` and raises ImageError."""
    import hashlib
    import http.client
    import time

    digest, size = desc["digest"], desc["size"]
    what = f"layer {digest}"
    hasher = hashlib.sha256()
    done = 0
    last_error: ImageError | None = None
    with open(dest, "wb") as out:
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.2 * attempt)
            headers = {"Range": f"bytes={done}-"} if done else {}
            try:
                response = client.get(f"blobs/{digest}", headers, ok=(200, 206, 429, 500, 502, 503, 504),
                                      what=f"blob {digest}")
            except ImageError as exc:
                if "cannot reach" not in str(exc):
                    raise
                last_error = exc
                continue
            try:
                if response.status not in (200, 206):
                    last_error = ImageError(f"{what}: registry answered HTTP {response.status}")
                    continue
                if response.status == 200 and done:
                    # No resume here: start over.
                    out.seek(0)
                    out.truncate()
                    hasher, done = hashlib.sha256(), 0
                while True:
                    if cancelled is not None and cancelled.is_set():
                        raise ImageError(f"{what}: cancelled")
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > size:
                        raise ImageError(f"{what}: larger than the {size} bytes its manifest says")
                    hasher.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress.set(digest, f"Downloading {_mb(done)}/{_mb(size)}")
            except (OSError, http.client.HTTPException) as exc:
                last_error = ImageError(f"{what}: download interrupted after {done} bytes: {exc}")
                continue
            finally:
                response.close()
            if done < size:
                last_error = ImageError(f"{what}: truncated: {done} of {size} bytes")
                continue
            break
        else:
            out.truncate(0)
            raise last_error or ImageError(f"{what}: download failed")
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            out.truncate(0)
            raise ImageError(f"{what}: content does not match its digest (got {actual})")
    if progress is not None:
        progress.set(digest, f"Download complete {_mb(size)}")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
