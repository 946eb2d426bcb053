"""Cgroup layout detection from mountinfo text (no root needed)."""

import pytest

from minipod.cgroups import HYBRID, LEGACY, UNIFIED, Layout, detect_layout
from minipod.cgroups.detect import parse_mountinfo
from minipod.errors import CgroupError

# Taken from a hybrid host like the one minipod is developed on.
HYBRID_MOUNTINFO = """\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

# Debian 10 style: cpu and cpuacct (and net_cls,net_prio) share a hierarchy.
LEGACY_MOUNTINFO = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:6 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:12 - cgroup cgroup rw,net_cls,net_prio
32 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/pids rw,nosuid shared:14 - cgroup cgroup rw,pids
"""

UNIFIED_MOUNTINFO = """\
24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""


def _write(tmp_path, text, name="mountinfo"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_hybrid_host_uses_v1_hierarchies_and_remembers_unified(tmp_path):
    layout = detect_layout(_write(tmp_path, HYBRID_MOUNTINFO))
    assert layout.kind == HYBRID
    assert layout.unified == "/sys/fs/cgroup/unified"
    assert layout.mounts["memory"] == "/sys/fs/cgroup/memory"
    assert layout.mounts["cpuset"] == "/sys/fs/cgroup/cpuset"
    assert set(layout.mounts) == {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer",
                                  "blkio", "pids"}
    # name=systemd is a named hierarchy, not a controller
    assert "/sys/fs/cgroup/systemd" not in layout.mounts.values()


def test_legacy_host_with_comounted_controllers(tmp_path):
    layout = detect_layout(_write(tmp_path, LEGACY_MOUNTINFO))
    assert layout.kind == LEGACY
    assert layout.unified is None
    assert layout.mounts["cpu"] == layout.mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.mounts["net_prio"] == "/sys/fs/cgroup/net_cls,net_prio"
    assert "freezer" not in layout.mounts


def test_unified_host_reads_controllers_from_the_root(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    text = f"26 24 0:23 / {root} rw,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    layout = detect_layout(_write(tmp_path, text), root=str(root))
    assert layout == Layout(kind=UNIFIED, unified=str(root), mounts={
        c: str(root) for c in ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")})


def test_unified_host_without_readable_controllers_has_no_mounts(tmp_path):
    root = tmp_path / "cgroup"  # mounted, but no cgroup.controllers to read
    text = f"26 24 0:23 / {root} rw,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    layout = detect_layout(_write(tmp_path, text), root=str(root))
    assert layout == Layout(kind=UNIFIED, unified=str(root), mounts={})


def test_real_unified_mountinfo_line_is_understood():
    [mount] = parse_mountinfo(UNIFIED_MOUNTINFO)
    assert (mount.mountpoint, mount.fstype, mount.controllers) == ("/sys/fs/cgroup", "cgroup2", ())


def test_mounts_under_root_win_over_others(tmp_path):
    # A second memory hierarchy mounted elsewhere (another runtime's) is ignored.
    text = HYBRID_MOUNTINFO + "90 31 0:32 / /var/lib/other/memory rw - cgroup cgroup rw,memory\n"
    layout = detect_layout(_write(tmp_path, text))
    assert layout.mounts["memory"] == "/sys/fs/cgroup/memory"


def test_cgroups_mounted_outside_root_are_used_when_nothing_is_under_it(tmp_path):
    text = "40 1 0:40 / /cgroup/memory rw - cgroup cgroup rw,memory\n"
    layout = detect_layout(_write(tmp_path, text))
    assert layout == Layout(kind=LEGACY, mounts={"memory": "/cgroup/memory"}, unified=None)


def test_escaped_mount_points_are_decoded():
    text = r"40 1 0:40 / /tmp/with\040space rw - cgroup2 cgroup2 rw" + "\n"
    assert parse_mountinfo(text)[0].mountpoint == "/tmp/with space"


def test_overmounted_mount_point_keeps_the_last_mount():
    text = ("40 1 0:40 / /sys/fs/cgroup rw - cgroup cgroup rw,memory\n"
            "41 1 0:41 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    mounts = parse_mountinfo(text)
    assert [(m.mountpoint, m.fstype) for m in mounts] == [("/sys/fs/cgroup", "cgroup2")]


def test_optional_fields_and_garbage_lines_are_handled():
    text = ("garbage\n"
            "40 1 0:40 / /a rw shared:1 master:2 - cgroup cgroup rw,pids,noprefix\n"
            "41 1 0:41 / /b rw - ext4 /dev/sda1 rw\n")
    mounts = parse_mountinfo(text)
    assert len(mounts) == 1
    assert mounts[0].controllers == ("pids",)


def test_no_cgroup_mounted_is_a_clear_error(tmp_path):
    path = _write(tmp_path, "41 1 0:41 / /b rw - ext4 /dev/sda1 rw\n")
    with pytest.raises(CgroupError, match="no cgroup filesystem is mounted"):
        detect_layout(path)


def test_unreadable_mountinfo_names_the_file(tmp_path):
    with pytest.raises(CgroupError, match=r"read .*/nope: No such file"):
        detect_layout(str(tmp_path / "nope"))
