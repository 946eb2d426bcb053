"""Images benchmark (issue 6's "Speed"): unpacking a ~100 MB layer against
GNU tar extracting the same file, and pulling an image from a local registry
against ``skopeo copy`` of the same image to a directory.

    sudo .venv/bin/python bench/images.py [--runs 5] [--mb 100] [--out bench/results]

Each pair runs A (minipod) then B (the public tool), ``--runs`` times, from
scratch each time (a fresh target directory or image store), so both see the
same page cache and the same machine load; the table shows medians. Both
sides are separate processes started the same way (``run_timed``), so each
pays its own start-up. Targets: minipod's unpack at least 0.7x tar's speed
(time ratio <= 1/0.7); its pull at most 1.2x skopeo's time.

Everything lives in one temp dir under /tmp; the registry (Debian's
``docker-registry``) listens on 127.0.0.1 only and is stopped by pid.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

from core import REPO_DIR, BenchError, Metric, run_timed
from report import table, write_json

REGISTRY_BIN = "/usr/bin/docker-registry"
UNPACK_TARGET = round(1 / 0.7, 2)  # time ratio for "at least 0.7x tar's speed"
PULL_TARGET = 1.2
# Where the layer's files come from: real files of the host (a mix of sizes
# like an OS layer), only read.
SOURCE_DIRS = ("/usr/lib", "/usr/share", "/usr/bin")
MAX_FILE_BYTES = 8 << 20

UNPACK_SCRIPT = ("import sys; from minipod.images.unpack import unpack_layer; "
                 "f = open(sys.argv[1], 'rb'); unpack_layer(f, sys.argv[2])")


# ------------------------------------------------------------------ inputs
def build_layer(path: str, megabytes: int) -> int:
    """A tar of real host files (dirs, files, symlinks) up to ``megabytes``
    of content; returns its size."""
    limit = megabytes << 20
    total = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for top in SOURCE_DIRS:
            for current, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(current, name)
                    try:
                        info = tar.gettarinfo(full, arcname=full.lstrip("/"))
                    except OSError:
                        continue
                    # Regular files and symlinks only, none huge: the layer
                    # stays near ``megabytes`` and has many files, like an OS.
                    if not (info.isfile() or info.issym()) or info.size > MAX_FILE_BYTES:
                        continue
                    if info.isfile():
                        try:
                            with open(full, "rb") as f:
                                tar.addfile(info, f)
                        except OSError:
                            continue
                    else:
                        tar.addfile(info)
                    total += info.size
                    if total >= limit:
                        return os.path.getsize(path)
    return os.path.getsize(path)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_oci_layout(directory: str, layer_tar: str, tag: str) -> None:
    """An OCI image layout holding one gzip layer made from ``layer_tar``."""
    from minipod.images.importer import host_platform

    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs)
    with open(layer_tar, "rb") as f:
        raw = f.read()
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    arch, variant = host_platform()
    config = {"architecture": arch, "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]}}
    if variant:
        config["variant"] = variant
    config_bytes = json.dumps(config).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(gz),
                    "size": len(gz)}]}).encode()
    for blob in (gz, config_bytes, manifest):
        with open(os.path.join(blobs, _digest(blob)[7:]), "wb") as f:
            f.write(blob)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)


# ------------------------------------------------------------------ the registry
class LocalRegistry:
    """docker-registry on 127.0.0.1, storage under ``base``; stop() by pid."""

    def __init__(self, base: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = os.path.join(base, "registry.json")
        with open(config, "w") as f:
            json.dump({"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                       "storage": {"filesystem": {"rootdirectory": os.path.join(base, "data")}},
                       "http": {"addr": f"127.0.0.1:{self.port}"}}, f)
        self.log = open(os.path.join(base, "registry.log"), "wb")  # noqa: SIM115 (the registry's, until stop())
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", config], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise BenchError("docker-registry did not start")
                time.sleep(0.05)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------ the pairs
def _fresh(path: str) -> str:
    """An empty ``path``, with the disk quiet: the write-back of the run
    before (100 MB of files, then their removal) is done before the next
    timed command starts, so it is not charged to whichever side comes next."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.sync()
    return path


def bench_unpack(work: str, layer: str, runs: int, env: dict) -> tuple[Metric, Metric]:
    mine = Metric("unpack_ms", "unpack layer (minipod)", "ms", floor_label="GNU tar -xf of the same file")
    ratios = Metric("unpack_ratio", "unpack time / tar's", "x", target=UNPACK_TARGET)
    tar = shutil.which("tar") or "tar"
    target = os.path.join(work, "unpack")
    for _ in range(runs):
        a = run_timed([sys.executable, "-c", UNPACK_SCRIPT, layer, _fresh(target)], env).check()
        b = run_timed([tar, "-xf", layer, "-C", _fresh(target)], env).check()
        mine.minipod.append(a.wall_ms)
        mine.floor.append(b.wall_ms)
        ratios.minipod.append(a.wall_ms / b.wall_ms)
    shutil.rmtree(target, ignore_errors=True)
    return mine, ratios


def bench_pull(work: str, image: str, runs: int, env: dict) -> tuple[Metric, Metric, Metric]:
    """minipod's pull (download, verify, gunzip, unpack) against skopeo's
    copy to a directory (download and verify only: the issue's target), and,
    for scale, against skopeo's copy followed by tar -xzf of its layer, which
    is the same work as minipod's."""
    mine = Metric("pull_ms", "pull image (minipod)", "ms", floor_label="skopeo copy docker:// dir:")
    ratios = Metric("pull_ratio", "pull time / skopeo's", "x", target=PULL_TARGET)
    same_work = Metric("pull_unpack_ratio", "pull / (skopeo + tar -xzf)", "x")
    store, copy, tree = (os.path.join(work, n) for n in ("pull-root", "pull-dir", "pull-tree"))
    for _ in range(runs):
        a = run_timed([sys.executable, "-m", "minipod", "image", "pull", image],
                      dict(env, MINIPOD_ROOT=_fresh(store))).check()
        shutil.rmtree(copy, ignore_errors=True)
        b = run_timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{image}",
                       f"dir:{copy}"], env).check()
        layer = max((os.path.join(copy, n) for n in os.listdir(copy)), key=os.path.getsize)
        c = run_timed(["tar", "-xzf", layer, "-C", _fresh(tree)], env).check()
        mine.minipod.append(a.wall_ms)
        mine.floor.append(b.wall_ms)
        ratios.minipod.append(a.wall_ms / b.wall_ms)
        same_work.minipod.append(a.wall_ms / (b.wall_ms + c.wall_ms))
    for path in (store, copy, tree):
        shutil.rmtree(path, ignore_errors=True)
    return mine, ratios, same_work


def _inflate_module_name(env: dict) -> str:
    """Which zlib minipod inflates with here (zlib-ng when installed)."""
    probe = "from minipod.images.compression import inflate_module; print(inflate_module().__name__)"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="pairs per measurement (default 5)")
    p.add_argument("--mb", type=int, default=100, help="content of the layer in MB (default 100)")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "bench", "results"), help="where results go")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/images.py needs root (tar and minipod keep file ownership; the store is root's)",
              file=sys.stderr)
        return 2
    for tool in (REGISTRY_BIN, "skopeo", "tar"):
        if not shutil.which(tool):
            print(f"bench/images.py needs {tool} (apt-get install docker-registry skopeo tar)", file=sys.stderr)
            return 2
    if REPO_DIR not in sys.path:
        sys.path.insert(0, REPO_DIR)
    env = dict(os.environ, PYTHONPATH=REPO_DIR, MINIPOD_REGISTRY_LOOPBACK_ONLY="1")
    load_before = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="minipod-bench-images-", dir="/tmp")
    registry = None
    try:
        layer = os.path.join(work, "layer.tar")
        size = build_layer(layer, args.mb)
        rows = list(bench_unpack(work, layer, args.runs, env))
        registry = LocalRegistry(work)
        layout = os.path.join(work, "layout")
        write_oci_layout(layout, layer, "1")
        image = f"{registry.host}/bench/image:1"
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1",
                        f"docker://{image}"], check=True, capture_output=True)
        gz_size = sum(os.path.getsize(os.path.join(layout, "blobs", "sha256", n))
                      for n in os.listdir(os.path.join(layout, "blobs", "sha256")))
        rows += bench_pull(work, image, args.runs, env)
    finally:
        if registry is not None:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "bench": "images", "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": args.runs, "layer_bytes": size, "image_bytes_gzip": gz_size,
        "tar_version": subprocess.run(["tar", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0],
        "skopeo_version": subprocess.run(["skopeo", "--version"], capture_output=True, text=True, check=False).stdout.strip(),
        "inflate": _inflate_module_name(env),
        "load_before": load_before, "load_after": os.getloadavg()[0],
        "rows": [m.to_dict() for m in rows],
    }
    print(f"layer: {size / 1e6:.0f} MB tar ({gz_size / 1e6:.0f} MB gzip in the registry), {args.runs} pairs; "
          f"inflating with {result['inflate']}; load average {load_before:.1f} before, "
          f"{result['load_after']:.1f} after (other work on the machine skews every figure)")
    print(table(result["rows"]))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    print(write_json(result, os.path.join(args.out, f"images-{stamp}.json")))
    # A missed target is a result, printed above; the exit status is for the
    # bench itself going wrong, as in the other benches.
    return 0


if __name__ == "__main__":
    sys.exit(main())
