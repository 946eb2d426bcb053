"""Tests of the seccomp benchmark (bench/seccomp.py): its pure parts, and
that a short run writes its result and leaves nothing. No assertion on any
timing; no root needed.

    .venv/bin/python -m pytest bench/test_seccomp_bench.py -q
"""

from __future__ import annotations

import glob
import json

import pytest

import seccomp


def _has_libseccomp() -> bool:
    from minipod.errors import MinipodError
    from minipod.libseccomp import library

    try:
        library()
        return True
    except MinipodError:
        return False


def test_parse_args_defaults_and_limits():
    args = seccomp.parse_args([])
    assert (args.runs, args.warmup) == (50, 3) and args.out.endswith("bench/results")
    for bad in (["--runs", "0"], ["--warmup", "-1"]):
        with pytest.raises(SystemExit):
            seccomp.parse_args(bad)


def test_paired_differences():
    assert seccomp.paired_differences([3.0, 5.0, 1.0], [1.0, 2.0]) == [2.0, 3.0]


def test_the_docker_like_profile_is_a_valid_profile():
    from minipod.seccomp_profile import parse_profile

    profile = parse_profile(json.dumps(seccomp.docker_like_profile()), "docker-like.json")
    assert profile.warnings == () and len(profile.rules[0].names) > 300
    assert profile.architectures_for("x86_64") == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")


@pytest.mark.skipif(not _has_libseccomp(), reason="libseccomp.so.2 is not installed")
def test_a_short_run_writes_its_result_and_cleans_up(tmp_path, capsys):
    before = set(glob.glob("/tmp/minipod-bench-seccomp-*"))
    assert seccomp.main(["--runs", "2", "--warmup", "0", "--out", str(tmp_path)]) == 0
    (path,) = glob.glob(str(tmp_path / "seccomp-*.json"))
    with open(path) as f:
        result = json.load(f)
    assert result["clean"] and result["left_behind"] == []
    keys = [row["key"] for row in result["rows"]]
    assert keys == ["rd_build", "lh_compile", "lh_first", "rd_start", "rd_added", "lh_start", "lh_added"]
    added = next(row for row in result["rows"] if row["key"] == "rd_added")
    assert added["minipod"]["n"] == 2 and added["target"] == seccomp.ADDED_TARGET_MS
    assert result["filter_instructions"]["RuntimeDefault"] > 10
    assert set(glob.glob("/tmp/minipod-bench-seccomp-*")) == before
    assert "added by RuntimeDefault" in capsys.readouterr().out
