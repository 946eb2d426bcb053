"""Bad input: one clear error with its field path, a non-zero exit, nothing created."""

from __future__ import annotations

import os

import pytest

GOOD_CONTAINER = "  - {name: app, image: localhost/busybox:demo, command: [sleep, '60']}\n"

BROKEN = {
    "yaml syntax": ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n spec: [\n", "line"),
    "unknown field": ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
                      "  - {name: app, image: localhost/busybox:demo, imagePullPolcy: Never}\n",
                      "spec.containers[0].imagePullPolcy"),
    "duplicate container names": ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
                                  + GOOD_CONTAINER + GOOD_CONTAINER, "spec.containers[1].name"),
    "volumeMount with no volume": ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
                                   "  - name: app\n    image: localhost/busybox:demo\n"
                                   "    volumeMounts: [{name: data, mountPath: /data}]\n",
                                   "spec.containers[0].volumeMounts[0].name"),
    "invalid name": ("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers:\n"
                     + GOOD_CONTAINER, "metadata.name"),
    "port 70000": ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
                   "  - name: app\n    image: localhost/busybox:demo\n    ports: [{containerPort: 70000}]\n",
                   "spec.containers[0].ports[0].containerPort"),
    "missing image": ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
                      "  - {name: app}\n", "spec.containers[0].image"),
    "not a Pod": ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n", "Deployment"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifest_clear_error_nothing_created(mp, tmp_path, case):
    text, expected = BROKEN[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    for command in (["validate", str(path)], ["run", "-d", str(path)]):
        res = mp.cli(*command)
        assert res.returncode != 0, res.stdout
        assert expected in res.stderr, res.stderr
        assert res.stderr.startswith("error:"), res.stderr
        assert "Traceback" not in res.stderr
    # nothing on the host: not even minipod's directories
    assert not os.path.exists(os.path.join(mp.root, "run")), os.listdir(mp.root)
    assert not os.path.exists(os.path.join(mp.root, "var", "lib", "minipod", "pods"))


def test_image_not_in_store_is_an_error_before_anything_exists(mp, tmp_path):
    res = mp.cli("run", "-d", "-", input="apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n"
                 "  containers:\n  - {name: app, image: no-such-image:1.0}\n")
    assert res.returncode != 0
    assert 'image "no-such-image:1.0" not found' in res.stderr, res.stderr
    assert not os.path.exists(os.path.join(mp.root, "run"))


def test_unknown_pod_and_missing_file(mp):
    for args in (["inspect", "nope"], ["logs", "nope"], ["rm", "nope"], ["stop", "nope"],
                 ["exec", "nope", "--", "true"]):
        res = mp.cli(*args)
        assert res.returncode != 0 and 'pod "nope" not found' in res.stderr, (args, res.stderr)
    res = mp.cli("run", "/no/such/file.yaml")
    assert res.returncode != 0 and "no such file" in res.stderr

