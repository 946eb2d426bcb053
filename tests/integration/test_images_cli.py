"""`minipod image import / ls / inspect / rm` through the real command line,
and what `run` says once an image is gone."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - {{name: c, image: "{image}", command: ["sh", "-c", "echo made-from-{name}"]}}
"""


def _tar(rootfs: str, path: str, mode: str) -> str:
    with tarfile.open(path, mode) as tar:
        tar.add(rootfs, arcname=".")
    return path


@pytest.fixture
def tars(busybox_rootfs, tmp_path) -> dict[str, str]:
    return {"plain": _tar(busybox_rootfs, str(tmp_path / "rootfs.tar"), "w"),
            "gzip": _tar(busybox_rootfs, str(tmp_path / "rootfs.tar.gz"), "w:gz")}


def _images(mp) -> list[dict]:
    return json.loads(mp.cli("image", "ls", "-o", "json", check=True).stdout)


def test_import_plain_and_gzip_tars_then_run_them(mp, tars):
    for kind, path in tars.items():
        res = mp.cli("image", "import", path, f"localhost/fromtar:{kind}")
        assert res.returncode == 0, res.stderr
        ref, image_id = res.stdout.split()
        assert ref == f"localhost/fromtar:{kind}"
        assert image_id.startswith("sha256:") and len(image_id) == 7 + 64
    for kind in tars:
        res = mp.cli("run", "-", input=POD.format(name=f"from-{kind}", image=f"localhost/fromtar:{kind}"))
        assert res.returncode == 0, res.stderr
        assert res.stdout == f"c | made-from-from-{kind}\n"


def test_image_ls_json_and_inspect(mp, tars):
    assert _images(mp) == []  # an empty store lists nothing, and that is no error
    mp.cli("image", "import", tars["gzip"], "localhost/listed:1", check=True)
    mp.cli("image", "import", tars["plain"], "short", check=True)
    images = _images(mp)
    assert [i["ref"] for i in images] == ["docker.io/library/short:latest", "localhost/listed:1"]
    for i in images:
        assert set(i) >= {"ref", "id", "digest", "size", "created"}
        assert i["id"].startswith("sha256:") and i["digest"].startswith("sha256:")
        assert isinstance(i["size"], int) and i["size"] > 0
    table = mp.cli("image", "ls", check=True).stdout.splitlines()
    assert table[0].split() == ["REFERENCE", "IMAGE", "ID", "SIZE"]
    assert [row.split()[0] for row in table[1:]] == ["docker.io/library/short:latest", "localhost/listed:1"]

    listed = {i["ref"]: i for i in images}["localhost/listed:1"]
    shown = json.loads(mp.cli("image", "inspect", "localhost/listed:1", check=True).stdout)
    assert {k: shown[k] for k in ("ref", "id", "digest", "size")} == \
        {k: listed[k] for k in ("ref", "id", "digest", "size")}
    assert shown["config"] == {}  # imported from a root filesystem: an empty config
    assert len(shown["layers"]) == 1 and os.path.isfile(os.path.join(shown["layers"][0], "bin", "busybox"))
    # the 12 digits `image ls` shows find the image too, and a familiar name finds its canonical one
    short_id = listed["id"].split(":")[1][:12]
    assert json.loads(mp.cli("image", "inspect", short_id, check=True).stdout)["id"] == listed["id"]
    assert json.loads(mp.cli("image", "inspect", "short", check=True).stdout)["ref"] == \
        "docker.io/library/short:latest"
    res = mp.cli("image", "inspect", "localhost/absent:1")
    assert res.returncode != 0 and 'image "localhost/absent:1" not found' in res.stderr


def test_image_rm_then_run_fails_clearly_and_creates_nothing(mp, tars):
    mp.cli("image", "import", tars["plain"], "localhost/doomed:1", check=True)
    res = mp.cli("image", "rm", "localhost/doomed:1")
    assert res.returncode == 0 and res.stdout.strip() == "localhost/doomed:1", res.stderr
    assert _images(mp) == []
    # layers and blobs no image uses are gone
    layers = os.path.join(mp.root, "var", "lib", "minipod", "images", "layers")
    assert [n for n in os.listdir(layers) if not n.startswith(".")] == []
    res = mp.cli("run", "-", input=POD.format(name="orphan", image="localhost/doomed:1"))
    assert res.returncode != 0
    assert res.stderr.startswith('error: image "localhost/doomed:1" not found'), res.stderr
    assert "Traceback" not in res.stderr
    assert not os.path.exists(os.path.join(mp.root, "run", "minipod", "pods", "default_orphan"))
    res = mp.cli("image", "rm", "localhost/doomed:1")
    assert res.returncode != 0 and "not found" in res.stderr


def test_image_rm_of_one_tag_keeps_the_other_and_the_pod(mp, tars):
    """Two names for the same image, a pod made from one: removing the other
    name only untags it (its layers stay, the pod keeps working), as
    `docker rmi` does."""
    mp.cli("image", "import", tars["plain"], "localhost/app:1", check=True)
    mp.cli("image", "import", tars["plain"], "localhost/app:alias", check=True)
    pod = mp.runtime().run(POD.format(name="user", image="localhost/app:1").replace("Never", "Always")
                           .replace('"sh", "-c", "echo made-from-user"', '"sleep", "3600"'))
    pod.wait_ready(10)
    res = mp.cli("image", "rm", "localhost/app:alias")
    assert res.returncode == 0, res.stderr
    assert [i["ref"] for i in _images(mp)] == ["localhost/app:1"]
    assert pod.exec("c", ["true"]).returncode == 0
    res = mp.cli("image", "rm", "localhost/app:1")  # this one the pod needs
    assert res.returncode != 0 and "used by pod default/user" in res.stderr


@pytest.mark.parametrize("bad", ["Bad_Name", "x::y", "Upper:1", "name:tag with space", "a" * 64])
def test_import_with_an_invalid_reference_fails_and_stores_nothing(mp, tars, bad):
    res = mp.cli("image", "import", tars["plain"], bad)
    assert res.returncode != 0
    assert res.stderr.startswith("error: invalid"), res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 2
    assert _images(mp) == []
    images_dir = os.path.join(mp.root, "var", "lib", "minipod", "images")
    blobs = os.path.join(images_dir, "blobs", "sha256")
    assert not os.path.isdir(blobs) or os.listdir(blobs) == []


def test_import_of_something_that_is_no_rootfs_fails_clearly(mp, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_text("this is not a tar archive\n")
    for src in (str(junk), str(tmp_path / "missing")):
        res = mp.cli("image", "import", src, "localhost/junk:1")
        assert res.returncode != 0
        assert res.stderr.startswith("error:") and "Traceback" not in res.stderr, res.stderr
    assert _images(mp) == []
