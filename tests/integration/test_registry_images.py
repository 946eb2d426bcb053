"""More pulls from the real registry of test_registry.py (its fixtures,
imported): imagePullSecrets, whiteouts seen inside a container, an image
index with two platforms; and, from a loopback stub, a truncated layer and an
unknown media type."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import threading

import pytest

# The fixtures live in test_registry.py; importing them here makes pytest
# offer them to this module too (pytest puts tests/integration on sys.path).
from test_registry import (  # noqa: F401
    PASSWORD,
    USER,
    _config,
    _digest,
    _files_tar,
    _gzip,
    _needs,
    _rootfs_tar,
    _store_files,
    _Stub,
    auth_registry,
    busybox_layout,
    registry,
    write_oci_layout,
)

pytestmark = pytest.mark.integration


def _run(mp, name: str, image: str, script: str, extra_docs: str = "", pod_spec: str = "") -> str:
    """Run a one-container pod with ``script`` and return its log."""
    text = extra_docs + f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  {pod_spec}
  containers:
  - name: c
    image: "{image}"
    command: ["sh", "-c", {json.dumps(script)}]
"""
    pod = mp.runtime().run(text)
    try:
        pod.wait_phase("Succeeded", timeout=20)
        return "".join(pod.logs("c"))
    finally:
        pod.remove(force=True, timeout=0)


# ----- imagePullSecrets


def test_image_pull_secret_gives_the_credentials(mp, auth_registry):  # noqa: F811 (the imported fixture)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = base64.b64encode(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}).encode()).decode()
    secret = f"""
apiVersion: v1
kind: Secret
metadata: {{name: regcred}}
type: kubernetes.io/dockerconfigjson
data: {{.dockerconfigjson: "{config}"}}
---
"""
    # Without the secret the registry refuses us ...
    with pytest.raises(Exception, match="authentication required or wrong credentials"):
        _run(mp, "nosecret", auth_registry.image, "true")
    assert _store_files(mp) == set()
    # ... with it, the pod's image is pulled and runs.
    out = _run(mp, "withsecret", auth_registry.image, "echo pulled-with-secret", secret,
               "imagePullSecrets: [{name: regcred}]")
    assert "pulled-with-secret" in out


# ----- whiteouts


@pytest.fixture(scope="module")
def whiteout_image(registry, busybox_rootfs, tmp_path_factory) -> str:  # noqa: F811 (the imported fixture)
    """busybox, then a layer with /data/{keep,gone} and /data/opq/{old1,old2},
    then a layer that deletes /data/gone and makes /data/opq opaque with one
    new file."""
    layout = str(tmp_path_factory.mktemp("oci") / "whiteout")
    lower = _files_tar({"data/keep": b"keep\n", "data/gone": b"gone\n",
                        "data/opq/old1": b"1\n", "data/opq/old2": b"2\n"})
    upper = _files_tar({"data/.wh.gone": b"", "data/opq/.wh..wh..opq": b"", "data/opq/new": b"new\n"})
    write_oci_layout(layout, [_rootfs_tar(busybox_rootfs), lower, upper], "1")
    return registry.push(layout, "1", "test/whiteout:1")


def test_whiteouts_and_opaque_dir_inside_the_container(mp, whiteout_image):
    out = _run(mp, "whiteout", whiteout_image,
               "echo data: $(ls -A /data); echo opq: $(ls -A /data/opq); test -e /data/gone || echo gone-absent")
    assert "data: keep opq\n" in out, out
    assert "opq: new\n" in out, out
    assert "gone-absent" in out, out


# ----- an index with two platforms


def _other_arch(arch: str) -> str:
    return "arm64" if arch != "arm64" else "amd64"


def _write_index_layout(directory: str, busybox_tar: bytes, tag: str) -> None:
    """An OCI layout whose tag names an image index of two images: this
    host's platform (busybox + /platform = host) and another (/platform =
    other; it could never run here, so it must not be chosen)."""
    from minipod.images.importer import host_platform

    arch, variant = host_platform()
    blobs, entries = {}, []
    for platform_arch, marker in ((_other_arch(arch), b"other\n"), (arch, b"host\n")):
        layers = [busybox_tar, _files_tar({"platform": marker})]
        gzipped = [_gzip(t) for t in layers]
        config = json.loads(_config([_digest(t) for t in layers]))
        config["architecture"] = platform_arch
        if platform_arch != arch:
            config.pop("variant", None)
        config = json.dumps(config).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(g),
                        "size": len(g)} for g in gzipped]}).encode()
        for blob in gzipped + [config, manifest]:
            blobs[_digest(blob)] = blob
        platform = {"os": "linux", "architecture": platform_arch}
        if platform_arch == arch and variant:
            platform["variant"] = variant
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
                        "size": len(manifest), "platform": platform})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    blobs[_digest(index)] = index
    os.makedirs(os.path.join(directory, "blobs", "sha256"))
    for digest, data in blobs.items():
        with open(os.path.join(directory, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
            f.write(data)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": _digest(index),
            "size": len(index), "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)


def test_index_with_two_platforms_pulls_the_hosts(mp, registry, busybox_rootfs, tmp_path):  # noqa: F811 (the imported fixture)
    layout = str(tmp_path / "multi")
    _write_index_layout(layout, _rootfs_tar(busybox_rootfs), "1")
    image = f"{registry.host}/test/multi:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                    f"oci:{layout}:1", f"docker://{image}"], check=True, capture_output=True)
    manifest = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
        check=True, capture_output=True).stdout)
    assert len(manifest["manifests"]) == 2, "the registry should serve the index itself"
    mp.cli("image", "pull", image, check=True)
    assert _run(mp, "multi", image, "cat /platform").strip() == "host"


# ----- a stub registry: truncated layer, unknown media type


def _serve(routes: dict):
    handler = type("Handler", (_Stub,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def bad_stub(tmp_path):
    """/v2/bad/truncated:1 serves a layer cut short of the size its
    manifest says; /v2/bad/unknown:1 has a layer of an unknown media type."""
    layout = write_oci_layout(str(tmp_path / "stub"), [_files_tar({"a": b"x" * 4096})], "1")
    layer = layout["layers"][0]["digest"]
    routes = {"/v2/": ("application/json", b"{}")}
    for name in ("truncated", "unknown"):
        for digest, data in layout["blobs"].items():
            routes[f"/v2/bad/{name}/blobs/{digest}"] = ("application/octet-stream", data)
    routes["/v2/bad/truncated/manifests/1"] = ("application/vnd.oci.image.manifest.v1+json", layout["manifest"])
    routes[f"/v2/bad/truncated/blobs/{layer}"] = ("application/octet-stream", layout["blobs"][layer][:-10])
    odd = json.loads(layout["manifest"])
    odd["layers"][0]["mediaType"] = "application/vnd.example.strange.layer"
    routes["/v2/bad/unknown/manifests/1"] = ("application/vnd.oci.image.manifest.v1+json", json.dumps(odd).encode())
    server = _serve(routes)
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_truncated_layer_is_a_clear_error_and_stores_nothing(mp, bad_stub):
    _needs("true")
    res = mp.cli("image", "pull", f"{bad_stub}/bad/truncated:1")
    assert res.returncode != 0 and res.stderr.startswith("error: "), res.stderr
    assert "truncated" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert _store_files(mp) == set()


def test_unknown_media_type_is_a_clear_error_and_stores_nothing(mp, bad_stub):
    _needs("true")
    res = mp.cli("image", "pull", f"{bad_stub}/bad/unknown:1")
    assert res.returncode != 0 and res.stderr.startswith("error: "), res.stderr
    assert "unknown media type 'application/vnd.example.strange.layer'" in res.stderr, res.stderr
    assert _store_files(mp) == set()
