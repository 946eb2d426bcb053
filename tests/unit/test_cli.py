"""The command line without root: argument handling, errors, not-root message."""

from __future__ import annotations

import os

from click.testing import CliRunner

from minipod.cli import main

POD = """apiVersion: v1
kind: Pod
metadata: {name: x}
spec:
  containers:
  - {name: app, image: localhost/busybox:demo, command: [sleep, "60"]}
"""


def test_not_root_gets_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    path = tmp_path / "pod.yaml"
    path.write_text(POD)
    for args in (["run", "-d", str(path)], ["ps"], ["rm", "-f", "x"], ["exec", "x", "--", "true"]):
        res = CliRunner().invoke(main, ["--root", str(tmp_path / "root"), *args])
        assert res.exit_code != 0, args
        assert res.output.splitlines()[0].startswith("error: minipod"), res.output
        assert "needs root" in res.output
    assert not (tmp_path / "root").exists()


def test_validate_reports_every_problem_with_paths(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(POD.replace("name: x", "name: Bad_Name").replace("sleep", "sleep],\n    bogus: [1"))
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code != 0
    assert "metadata.name" in res.output and "spec.containers[0].bogus" in res.output
    assert "Traceback" not in res.output


def test_validate_good_manifest(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(POD)
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output
