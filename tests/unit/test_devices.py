"""Device rules for a container's v1 devices cgroup, written into a temp dir."""

from __future__ import annotations

from minipod.devices import device_rules, restrict_devices, write_device_rules


def test_deny_all_first_then_the_default_devices():
    rules = device_rules(privileged=False)
    assert rules[0] == ("devices.deny", "a")
    allowed = [line for name, line in rules[1:] if name == "devices.allow"]
    assert len(allowed) == len(rules) - 1
    assert "c 1:3 rwm" in allowed and "c 136:* rwm" in allowed and "b *:* m" in allowed
    assert not any(line.startswith("b") and line.endswith("rwm") for line in allowed)  # no disk


def test_privileged_keeps_the_inherited_access():
    assert device_rules(privileged=True) == []


def test_rules_are_written_line_by_line(tmp_path):
    for name in ("devices.deny", "devices.allow"):
        (tmp_path / name).write_text("")
    write_device_rules(str(tmp_path), privileged=False)
    # Each write replaces a plain file (the kernel's files take one rule per write): the last one stays.
    assert (tmp_path / "devices.deny").read_text() == "a"
    assert (tmp_path / "devices.allow").read_text() == "c 10:200 rwm"


class _FakeCgroup:
    def __init__(self, kind, directory):
        self.kind = kind
        self.directory = directory

    def controller_dir(self, controller):
        assert controller == "devices"
        return self.directory


def test_a_cgroup_with_no_directory_for_devices_gets_a_warning_not_an_error(tmp_path):
    """No devices hierarchy at all (a v1 host without it, or no cgroup
    directory to attach a program to): a warning, not a failed start."""
    warnings = restrict_devices(_FakeCgroup("v2", None), privileged=False)
    assert len(warnings) == 1 and "not restricted" in warnings[0]
    assert restrict_devices(_FakeCgroup("v2", None), privileged=True) == []


def test_v1_host_writes_into_the_container_cgroup(tmp_path):
    for name in ("devices.deny", "devices.allow"):
        (tmp_path / name).write_text("")
    assert restrict_devices(_FakeCgroup("v1", str(tmp_path)), privileged=False) == []
    assert (tmp_path / "devices.deny").read_text() == "a"
