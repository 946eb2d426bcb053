"""Which command lines make minipod fork a pod's supervisor before click is
imported (``minipod.__main__``, ``launcher.prefork``): only a ``run``."""

import click
import pytest

from minipod import launcher
from minipod.__main__ import GLOBAL_OPTIONS_WITH_VALUE, command_of
from minipod.cli import main


@pytest.mark.parametrize("argv, command", [
    (["run", "-d", "pod.yaml"], "run"),
    (["--root", "/tmp/x", "run", "pod.yaml"], "run"),
    (["--root", "run", "ps"], "ps"),  # a root directory named "run" is not the command
    (["--debug", "--bridge", "b0", "--subnet", "10.1.0.0/24", "--cgroup-parent", "p", "run", "f"], "run"),
    (["--root=/x", "rm", "-f", "run"], "rm"),
    (["logs", "run"], "logs"),
    (["--help"], None),
    ([], None),
])
def test_command_of(argv, command):
    assert command_of(argv) == command


def test_the_global_options_that_take_a_value_are_the_cli_s():
    taking_value = {opt for p in main.params if isinstance(p, click.Option) and not p.is_flag for opt in p.opts}
    assert taking_value == set(GLOBAL_OPTIONS_WITH_VALUE)


def test_prefork_only_for_root_and_taken_once(monkeypatch):
    forked = []
    monkeypatch.setattr(launcher.EarlySupervisor, "fork", classmethod(lambda cls: forked.append(1) or "sup"))
    monkeypatch.setattr(launcher, "_preforked", None)
    monkeypatch.setattr(launcher.os, "geteuid", lambda: 1000)
    launcher.prefork()
    assert forked == []
    monkeypatch.setattr(launcher.os, "geteuid", lambda: 0)
    launcher.prefork()
    assert forked == [1]
    assert launcher.early_supervisor() == "sup"  # taken once...
    assert launcher.early_supervisor() == "sup" and forked == [1, 1]  # ...then a new one is forked


def test_a_failed_prefork_is_left_to_run(monkeypatch):
    def fail(cls):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(launcher.EarlySupervisor, "fork", classmethod(fail))
    monkeypatch.setattr(launcher, "_preforked", None)
    monkeypatch.setattr(launcher.os, "geteuid", lambda: 0)
    launcher.prefork()  # no traceback before click even parses the command
    assert launcher._preforked is None
