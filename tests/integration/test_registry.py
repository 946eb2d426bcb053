"""Pull from a real registry (Debian's docker-registry on loopback, images
pushed with skopeo) and load archives, then run pods from what came in.

Bad cases that a real registry will not produce (a tampered blob) use a tiny
http.server stub on loopback."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration

# No test here (nor a typo in an image name in any other test of the same
# run) may reach a registry off this machine.
os.environ.setdefault("MINIPOD_REGISTRY_LOOPBACK_ONLY", "1")

REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "tester", "s3cret-pw"

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: "{image}"
    {policy}
    command: ["sh", "-c", "echo hello-from-{name}"]
"""


def _needs(tool: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("registry tests run pods and need root")
    if not shutil.which(tool) and not os.path.exists(tool):
        pytest.skip(f"{tool} is not installed (apt-get install docker-registry skopeo apache2-utils)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----- building images without Docker


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _rootfs_tar(rootfs: str) -> bytes:
    from minipod.images.importer import write_rootfs_tar

    out = io.BytesIO()
    write_rootfs_tar(rootfs, out)
    return out.getvalue()


def _files_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _config(diff_ids: list[str]) -> bytes:
    from minipod.images.importer import host_platform

    arch, variant = host_platform()
    doc = {"architecture": arch, "os": "linux", "config": {"Env": ["FROM_IMAGE=yes"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if variant:
        doc["variant"] = variant
    return json.dumps(doc, sort_keys=True).encode()


def write_oci_layout(directory: str, layer_tars: list[bytes], tag: str) -> dict:
    """An OCI image layout with gzip layers; returns the blobs by digest."""
    blobs = {}
    layers = []
    for tar in layer_tars:
        gz = _gzip(tar)
        blobs[_digest(gz)] = gz
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": _digest(gz), "size": len(gz)})
    config = _config([_digest(t) for t in layer_tars])
    blobs[_digest(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _digest(config), "size": len(config)},
                           "layers": layers}).encode()
    blobs[_digest(manifest)] = manifest
    os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)
    for digest, data in blobs.items():
        with open(os.path.join(directory, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
            f.write(data)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    return {"blobs": blobs, "manifest": manifest, "config": config, "layers": layers}


# ----- a real registry


class Registry:
    def __init__(self, base: str, auth: bool):
        _needs(REGISTRY_BIN)
        _needs("skopeo")
        self.port = _free_port()
        self.auth = auth
        self.dir = base
        self.log_path = os.path.join(base, "registry.log")
        config = {"version": 0.1, "log": {"level": "info", "accesslog": {"disabled": False}},
                  "storage": {"filesystem": {"rootdirectory": os.path.join(base, "data")}},
                  "http": {"addr": f"127.0.0.1:{self.port}"}}
        if auth:
            _needs("htpasswd")
            htpasswd = os.path.join(base, "htpasswd")
            subprocess.run(["htpasswd", "-Bbc", htpasswd, USER, PASSWORD], check=True, capture_output=True)
            config["auth"] = {"htpasswd": {"realm": "minipod-test", "path": htpasswd}}
        config_path = os.path.join(base, "config.yml")
        with open(config_path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", config_path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # 401 with auth: it answers
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise AssertionError("docker-registry did not start:\n" + open(self.log_path).read())
                time.sleep(0.05)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def push(self, layout: str, tag: str, name: str) -> str:
        cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if self.auth:
            cmd += ["--dest-creds", f"{USER}:{PASSWORD}"]
        subprocess.run(cmd + [f"oci:{layout}:{tag}", f"docker://{self.host}/{name}"], check=True,
                       capture_output=True)
        return f"{self.host}/{name}"

    def blob_gets(self) -> int:
        self.log.flush()
        return sum(1 for line in open(self.log_path, errors="replace")
                   if '"GET /v2/' in line and "/blobs/sha256:" in line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def busybox_layout(busybox_rootfs, tmp_path_factory) -> str:
    layout = str(tmp_path_factory.mktemp("oci") / "busybox")
    write_oci_layout(layout, [_rootfs_tar(busybox_rootfs), _files_tar({"etc/motd": b"top layer\n"})], "1")
    return layout


@pytest.fixture(scope="session")
def registry(tmp_path_factory, busybox_layout):
    reg = Registry(str(tmp_path_factory.mktemp("registry")), auth=False)
    try:
        reg.image = reg.push(busybox_layout, "1", "test/busybox:1")
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory, busybox_layout):
    reg = Registry(str(tmp_path_factory.mktemp("registry-auth")), auth=True)
    try:
        reg.image = reg.push(busybox_layout, "1", "private/busybox:1")
        yield reg
    finally:
        reg.stop()


def _store_files(mp) -> set[str]:
    """Every file in the image store except its lock files."""
    found = set()
    for current, _dirs, files in os.walk(os.path.join(mp.root, "var", "lib", "minipod", "images")):
        found.update(os.path.join(current, f) for f in files if not f.endswith("lock"))
    return found


def _run_pod(mp, name: str, image: str, policy: str = "") -> str:
    pod = mp.runtime().run(POD.format(name=name, image=image, policy=policy))
    try:
        pod.wait_phase("Succeeded", timeout=20)
        return "".join(pod.logs("c"))
    finally:
        pod.remove(force=True, timeout=0)


# ----- tests: the real registry


def test_pull_then_run_and_second_pull_downloads_nothing(mp, registry):
    res = mp.cli("image", "pull", registry.image)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{registry.image} sha256:"), res.stdout
    assert res.stderr == ""  # not a terminal: no progress
    assert "hello-from-pulled" in _run_pod(mp, "pulled", registry.image)
    before = registry.blob_gets()
    assert before > 0, "the registry's access log shows no blob fetch"
    mp.cli("image", "pull", registry.image, check=True)
    assert registry.blob_gets() == before, "the second pull fetched blobs again"


def test_if_not_present_pulls_before_starting(mp, registry):
    assert "hello-from-auto" in _run_pod(mp, "auto", registry.image)
    assert json.loads(mp.cli("image", "ls", "-o", "json", check=True).stdout)[0]["ref"] == registry.image


def test_never_policy_does_not_pull(mp, registry):
    res = mp.cli("run", "-d", "-", input=POD.format(name="never", image=registry.image,
                                                    policy="imagePullPolicy: Never"))
    assert res.returncode != 0 and f'image "{registry.image}" not found' in res.stderr, res.stderr
    assert _store_files(mp) == set()


def test_missing_tag_and_registry_down_are_clear_and_store_nothing(mp, registry):
    res = mp.cli("image", "pull", f"{registry.host}/test/busybox:nope")
    assert res.returncode != 0
    assert res.stderr.startswith("error: ") and "manifest nope not found" in res.stderr, res.stderr
    down = f"127.0.0.1:{_free_port()}/test/busybox:1"
    res = mp.cli("image", "pull", down)
    assert res.returncode != 0 and "cannot reach registry" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert _store_files(mp) == set()


def test_basic_auth(mp, auth_registry):
    res = mp.cli("image", "pull", auth_registry.image)
    assert res.returncode != 0 and "authentication required or wrong credentials" in res.stderr, res.stderr
    res = mp.cli("image", "pull", "--creds", f"{USER}:wrong", auth_registry.image)
    assert res.returncode != 0 and "wrong credentials" in res.stderr, res.stderr
    assert _store_files(mp) == set()
    # credentials from a docker config.json
    docker_dir = os.path.join(mp.root, "docker")
    os.makedirs(docker_dir)
    import base64

    with open(os.path.join(docker_dir, "config.json"), "w") as f:
        json.dump({"auths": {auth_registry.host: {
            "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}, f)
    mp.env["DOCKER_CONFIG"] = docker_dir
    mp.cli("image", "pull", auth_registry.image, check=True)
    del mp.env["DOCKER_CONFIG"]
    mp.cli("image", "rm", auth_registry.image, check=True)
    mp.cli("image", "pull", "--creds", f"{USER}:{PASSWORD}", auth_registry.image, check=True)


# ----- tests: a stub registry for what a real one never serves


class _Stub(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        content_type, body = route
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_registry(busybox_layout):
    layout = write_oci_layout(os.path.join(busybox_layout + "-stub"), [_files_tar({"a": b"x"})], "1")
    routes = {"/v2/": ("application/json", b"{}"),
              "/v2/bad/img/manifests/1": ("application/vnd.oci.image.manifest.v1+json", layout["manifest"])}
    for digest, data in layout["blobs"].items():
        routes[f"/v2/bad/img/blobs/{digest}"] = ("application/octet-stream", data)
    layer = layout["layers"][0]["digest"]
    tampered = bytearray(layout["blobs"][layer])
    tampered[-1] ^= 0xFF
    routes[f"/v2/bad/img/blobs/{layer}"] = ("application/octet-stream", bytes(tampered))
    handler = type("Handler", (_Stub,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_digest_mismatch_is_an_error_and_stores_nothing(mp, stub_registry):
    _needs("true")
    res = mp.cli("image", "pull", f"{stub_registry}/bad/img:1")
    assert res.returncode != 0 and "content does not match its digest" in res.stderr, res.stderr
    assert _store_files(mp) == set()


# ----- tests: image load


def _tar_dir(directory: str, path: str, mode: str = "w") -> str:
    with tarfile.open(path, mode) as tar:
        for name in sorted(os.listdir(directory)):
            tar.add(os.path.join(directory, name), arcname=name)
    return path


def test_docker_save_archive_loads_and_runs(mp, busybox_rootfs, tmp_path):
    _needs("true")
    layer = _rootfs_tar(busybox_rootfs)
    config = _config([_digest(layer)])
    save = tmp_path / "save"
    (save / "abc123").mkdir(parents=True)
    (save / "abc123" / "layer.tar").write_bytes(layer)
    (save / f"{_digest(config)[7:]}.json").write_bytes(config)
    (save / "manifest.json").write_text(json.dumps([{
        "Config": f"{_digest(config)[7:]}.json", "RepoTags": ["localhost/saved:1"],
        "Layers": ["abc123/layer.tar"]}]))
    archive = _tar_dir(str(save), str(tmp_path / "saved.tar"))
    res = mp.cli("image", "load", archive)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"localhost/saved:1 {_digest(config)}"
    assert "hello-from-saved" in _run_pod(mp, "saved", "localhost/saved:1")


def test_oci_archive_loads_and_runs(mp, busybox_rootfs, tmp_path):
    _needs("true")
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, [_rootfs_tar(busybox_rootfs)], "localhost/ociarch:2")
    archive = _tar_dir(layout, str(tmp_path / "oci.tar.gz"), "w:gz")
    res = mp.cli("image", "load", archive)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("localhost/ociarch:2 sha256:"), res.stdout
    assert "hello-from-ociarch" in _run_pod(mp, "ociarch", "localhost/ociarch:2")
    # a layout whose index names only a tag needs --name
    write_oci_layout(str(tmp_path / "bare"), [_files_tar({"a": b"x"})], "1")
    res = mp.cli("image", "load", str(tmp_path / "bare"))
    assert res.returncode != 0 and "name it with --name" in res.stderr, res.stderr
    mp.cli("image", "load", "--name", "localhost/bare:1", str(tmp_path / "bare"), check=True)


def test_archive_with_escaping_entry_is_refused(mp, tmp_path):
    _needs("true")
    evil = str(tmp_path / "evil.tar")
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    res = mp.cli("image", "load", evil)
    assert res.returncode != 0 and "error: image load:" in res.stderr, res.stderr
    assert not (tmp_path / "escape").exists()
    assert _store_files(mp) == set()
