"""`minipod image rm -f` and `minipod image prune` on a real store, with real
pods: a running pod keeps its lower layers after its image is untagged, a
prune never collects what a pull in progress has staged, and what a killed
pull left behind is collected afterwards."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import DEMO_IMAGE, REPO
from test_registry import _files_tar, _needs, _store_files, write_oci_layout

pytestmark = pytest.mark.integration

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - {{name: c, image: "{image}", command: ["sleep", "3600"]}}
"""
ONE_SHOT = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - {{name: c, image: "{image}", command: ["true"]}}
"""


def _layers_dir(mp) -> str:
    return os.path.join(mp.root, "var", "lib", "minipod", "images", "layers")


def _layers(mp) -> set[str]:
    return {n for n in os.listdir(_layers_dir(mp)) if re.fullmatch(r"[0-9a-f]{64}", n)}


def _images(mp) -> list[str]:
    return [i["ref"] for i in json.loads(mp.cli("image", "ls", "-o", "json", check=True).stdout)]


def _prune(mp, *args) -> tuple[list[str], re.Match]:
    res = mp.cli("image", "prune", *args, check=True)
    lines = res.stdout.splitlines()
    total = re.fullmatch(r"Total reclaimed space: (\S+) \((\d+) layers, (\d+) blobs, (\d+) leftovers of "
                         r"interrupted writes\)", lines[-1])
    assert total, res.stdout
    return lines[:-1], total


def test_rm_force_untags_and_the_running_pod_keeps_its_layers_until_it_is_removed(mpi, tmp_path):
    pod = mpi.runtime().run(SLEEPER.format(name="keeper", image=DEMO_IMAGE))
    pod.wait_ready(20)
    layers = _layers(mpi)
    assert len(layers) == 1

    res = mpi.cli("image", "rm", DEMO_IMAGE)
    assert res.returncode != 0 and "used by pod default/keeper" in res.stderr
    assert "image rm -f" in res.stderr  # the hint says how to force it
    res = mpi.cli("image", "rm", "-f", DEMO_IMAGE)
    assert res.returncode == 0 and res.stdout.strip() == DEMO_IMAGE, res.stderr
    assert _images(mpi) == []
    assert _layers(mpi) == layers  # the pod's lower layer stays

    # Removing another image, and pruning, leave the pod's layer alone.
    other = tmp_path / "other"
    (other / "etc").mkdir(parents=True)
    (other / "etc" / "note").write_text("another image\n")
    mpi.cli("image", "import", str(other), "localhost/other:1", check=True)
    mpi.cli("image", "rm", "localhost/other:1", check=True)
    deleted, total = _prune(mpi)
    assert deleted == [] and total.group(2) == "0"
    assert _layers(mpi) == layers
    res = pod.exec("c", ["sh", "-c", "cat /bin/busybox >/dev/null && echo still-there"])
    assert res.returncode == 0 and "still-there" in res.text

    pod.remove(force=True, timeout=0)
    deleted, total = _prune(mpi)
    assert deleted == [f"deleted layer: sha256:{layers.pop()}"]
    assert total.group(2) == "1" and total.group(1).endswith("MB"), total.group(0)  # busybox: about 2 MB
    assert _layers(mpi) == set() and _content(mpi) == set()


def test_prune_all_removes_images_no_pod_was_made_from(mpi, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    (small / "hello").write_text("hi\n")
    mpi.cli("image", "import", str(small), "localhost/unused:1", check=True)
    pod = mpi.runtime().run(ONE_SHOT.format(name="done", image=DEMO_IMAGE))
    pod.wait_phase("Succeeded", timeout=20)  # a finished pod still counts as a user

    lines, total = _prune(mpi, "-a")
    assert lines[0] == "untagged: localhost/unused:1" and len(lines) == 2, lines
    assert total.group(2) == "1"
    assert _images(mpi) == [DEMO_IMAGE]
    pod.remove(force=True, timeout=0)
    lines, total = _prune(mpi, "-a")
    assert lines[0] == f"untagged: {DEMO_IMAGE}" and total.group(2) == "1"
    assert _images(mpi) == [] and _content(mpi) == set()


# ----- a pull that stalls half-way, then is killed


class _StallingRegistry(http.server.BaseHTTPRequestHandler):
    """Serves an image whose last layer stops half-way until ``release``."""

    routes: dict = {}
    stall: str = ""
    release: threading.Event

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
        if self.path == self.stall:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.release.wait(30)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stalling_registry(tmp_path):
    layers = [_files_tar({f"data/{i}": os.urandom(50_000) for i in range(40)}),
              _files_tar({f"more/{i}": os.urandom(50_000) for i in range(40)})]
    layout = write_oci_layout(str(tmp_path / "stall"), layers, "1")
    routes = {"/v2/": ("application/json", b"{}"),
              "/v2/slow/img/manifests/1": ("application/vnd.oci.image.manifest.v1+json", layout["manifest"])}
    for digest, data in layout["blobs"].items():
        routes[f"/v2/slow/img/blobs/{digest}"] = ("application/octet-stream", data)
    release = threading.Event()
    handler = type("Handler", (_StallingRegistry,), {
        "routes": routes, "release": release,
        "stall": f"/v2/slow/img/blobs/{layout['layers'][1]['digest']}"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/slow/img:1"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _content(mp) -> set[str]:
    """The store's files but its (empty) index: blobs, layers, temporaries."""
    return {f for f in _store_files(mp) if os.path.basename(f) != "index.json"}


def _staged_files(mp) -> list[str]:
    return [f for f in _store_files(mp) if "/.tmp-" in f]


def test_prune_waits_for_a_pull_in_progress_and_collects_what_a_killed_one_left(mp, stalling_registry):
    _needs("true")
    pull = subprocess.Popen([sys.executable, "-m", "minipod", "image", "pull", stalling_registry],
                            env=mp.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    prune = None
    try:
        deadline = time.monotonic() + 20
        while len(_staged_files(mp)) < 2:  # both blobs are being written
            assert pull.poll() is None and time.monotonic() < deadline, pull.communicate()
            time.sleep(0.05)
        staged = _staged_files(mp)
        prune = subprocess.Popen([sys.executable, "-m", "minipod", "image", "prune"], env=mp.env, cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert prune.poll() is None, "prune did not wait for the pull in progress"
        assert set(staged) <= _store_files(mp), "prune removed what the pull had staged"
    finally:
        pull.send_signal(signal.SIGKILL)  # interrupted: no clean-up of its own
        pull.wait(10)
    out, err = prune.communicate(timeout=30)
    assert prune.returncode == 0, err
    total = re.search(r"\((\d+) layers, (\d+) blobs, (\d+) leftovers", out)
    assert total and int(total.group(3)) >= 2, out  # its blob files and layer dirs
    assert _images(mp) == [] and _content(mp) == set()
