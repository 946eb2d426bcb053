"""``minipod exec``: terminals (-t), standard input (-i), exit codes and
errors, driven through the real command line (under a pseudo-terminal where
a terminal is the point)."""

from __future__ import annotations

import fcntl
import os
import re
import selectors
import struct
import subprocess
import sys
import termios
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: localhost/busybox:demo, command: ["sleep", "3600"]}
"""


def _started(mpi, manifest: str = SLEEPER):
    pod = mpi.runtime().run(manifest)
    pod.wait_ready(10)
    return pod


class Terminal:
    """The CLI run with a pseudo-terminal as its stdin, stdout and stderr,
    as when a person types ``minipod exec -it`` in a terminal."""

    def __init__(self, mpi, *args: str, rows: int = 24, cols: int = 80):
        self.master, self.slave = os.openpty()
        # The size the person's terminal has; exec must pass it on.
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.modes = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen([sys.executable, "-m", "minipod", *args], stdin=self.slave,
                                     stdout=self.slave, stderr=self.slave, env=mpi.env, cwd=REPO,
                                     start_new_session=True)
        self.output = b""

    def _read(self, timeout: float) -> bool:
        """One read of what is there; False when nothing came in time."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.master, selectors.EVENT_READ)
            if not sel.select(timeout):
                return False
        self.output += os.read(self.master, 4096)
        return True

    def read_until(self, pattern: bytes, timeout: float = 5, since: int = 0) -> bool:
        """Read output until ``pattern`` shows up after offset ``since``
        (True) or time is up."""
        deadline = time.monotonic() + timeout
        while pattern not in self.output[since:] and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        return pattern in self.output[since:]

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self, timeout: float = 5) -> int:
        """Read until the command ends; its exit code."""
        deadline = time.monotonic() + timeout
        try:
            while self.proc.poll() is None and time.monotonic() < deadline:
                self._read(0.05)
            if self.proc.poll() is None:
                self.proc.kill()  # our own child, by its handle
                self.proc.wait()
                raise AssertionError(f"minipod exec did not end; output so far: {self.output!r}")
            while self._read(0.05):
                pass
            return self.proc.returncode
        finally:
            self.modes_after = termios.tcgetattr(self.slave)
            os.close(self.slave)
            os.close(self.master)


def test_exec_it_gives_an_interactive_terminal(mpi):
    """The issue's own check: `exec -it POD -- sh`, type `tty; echo $TERM;
    exit 3`, see a /dev/pts terminal, xterm, and exit code 3."""
    _started(mpi)
    term = Terminal(mpi, "exec", "-it", "shell", "--", "sh")
    assert term.read_until(b"# "), f"no shell prompt: {term.output!r}"
    term.type(b"tty; echo $TERM; exit 3\r")
    code = term.finish()
    text = term.output.decode(errors="replace")
    assert code == 3, text
    assert "xterm" in text, text
    # `tty` names the terminal of its stdin as the container sees it: a
    # terminal that exists in the container's own /dev/pts.
    assert "not a tty" not in text, text
    assert re.search(r"^/dev/pts/\d+\r?$", text, re.M), text


def test_exec_it_ctrl_c_reaches_the_container_and_the_terminal_is_restored(mpi):
    """In raw mode Ctrl-C is a key for the container's terminal: it
    interrupts the command running there, not `minipod exec`; and the
    person's terminal gets its modes back afterwards."""
    _started(mpi)
    term = Terminal(mpi, "exec", "-it", "shell", "--", "sh")
    assert term.read_until(b"# "), term.output
    term.type(b"sleep 30\r")
    assert term.read_until(b"sleep 30\r\n"), term.output  # echoed: the shell runs it
    time.sleep(0.3)
    before = len(term.output)
    term.type(b"\x03")  # Ctrl-C
    # the prompt comes back at once: the sleep was interrupted, exec was not
    assert term.read_until(b"# ", timeout=3, since=before), term.output
    term.type(b"echo alive; exit 5\r")
    code = term.finish(timeout=5)  # far less than the sleep's 30 s
    assert code == 5, term.output
    assert b"alive" in term.output
    assert term.modes_after == term.modes  # raw mode undone


def test_exec_it_terminal_exists_inside_the_container(mpi):
    """The process's terminal is a device of the container's /dev/pts (what
    `tty`, `ps` and `script` rely on), not a host terminal it cannot see."""
    _started(mpi)
    term = Terminal(mpi, "exec", "-it", "shell", "--", "sh", "-c",
                    'p=$(readlink /proc/self/fd/0); echo "fd0=$p"; [ -c "$p" ] && echo EXISTS || echo MISSING')
    code = term.finish()
    text = term.output.decode(errors="replace")
    assert code == 0, text
    assert re.search(r"fd0=/dev/pts/\d+", text), text
    assert "EXISTS" in text, text


def test_exec_it_passes_the_window_size(mpi):
    _started(mpi)
    term = Terminal(mpi, "exec", "-it", "shell", "--", "stty", "size", rows=33, cols=101)
    assert term.finish() == 0, term.output
    assert b"33 101" in term.output, term.output


def test_exec_t_without_i_gives_a_terminal_for_output(mpi):
    _started(mpi)
    res = mpi.cli("exec", "-t", "shell", "--", "sh", "-c", "[ -t 1 ] && echo stdout-is-a-tty; echo TERM=$TERM")
    assert res.returncode == 0, res.stderr
    # through a terminal "\n" becomes "\r\n"
    assert res.stdout.replace("\r\n", "\n") == "stdout-is-a-tty\nTERM=xterm\n", repr(res.stdout)
    plain = mpi.cli("exec", "shell", "--", "sh", "-c", "[ -t 1 ] || echo not-a-tty; echo TERM=${TERM:-unset}")
    assert plain.stdout == "not-a-tty\nTERM=unset\n", plain.stdout


def test_exec_it_with_piped_stdin_does_not_hang(mpi):
    """`echo hi | minipod exec -it POD -- cat`: stdin is not a terminal.
    kubectl falls back to no terminal, docker refuses; either way the
    command must end instead of waiting forever for an EOF that never
    reaches the container."""
    _started(mpi)
    try:
        res = mpi.cli("exec", "-it", "shell", "--", "cat", input="hi\n", timeout=6)
    except subprocess.TimeoutExpired:
        raise AssertionError("`exec -it` with stdin from a pipe hung after the input ended") from None
    if res.returncode == 0:
        assert "hi" in res.stdout, res.stdout
    else:
        assert res.stderr.startswith("error:") and "Traceback" not in res.stderr, res.stderr


def test_exec_i_passes_stdin_and_without_i_stdin_is_empty(mpi):
    _started(mpi)
    data = "".join(f"line {i}\n" for i in range(40000))  # ~400 kB: more than any pipe buffer
    res = mpi.cli("exec", "-i", "shell", "--", "sh", "-c", "wc -l; exit 0", input=data)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "40000"
    res = mpi.cli("exec", "-i", "shell", "--", "tr", "a-z", "A-Z", input="hello\n")
    assert res.stdout == "HELLO\n"
    # without -i the command gets no input at all (EOF at once), never the caller's
    res = mpi.cli("exec", "shell", "--", "cat", input="must not arrive\n", timeout=10)
    assert res.returncode == 0 and res.stdout == "", res.stdout


def test_exec_missing_program_and_exit_codes(mpi):
    _started(mpi)
    res = mpi.cli("exec", "shell", "--", "x")
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == ['error: exec: "x": executable file not found in $PATH'], res.stderr
    res = mpi.cli("exec", "shell", "--", "/no/such/program")
    assert res.returncode != 0 and '"/no/such/program"' in res.stderr and "Traceback" not in res.stderr
    assert mpi.cli("exec", "shell", "--", "sh", "-c", "exit 42").returncode == 42
    # killed by a signal: 128 + the signal, as a shell reports it
    assert mpi.cli("exec", "shell", "--", "sh", "-c", "kill -9 $$").returncode == 137
    res = mpi.cli("exec", "shell", "-c", "nope", "--", "true")
    assert res.returncode != 0 and 'container "nope" not found' in res.stderr


def test_exec_in_a_finished_container_is_a_clear_error(mpi):
    pod = mpi.runtime().run(SLEEPER.replace('["sleep", "3600"]', '["true"]').replace(
        "terminationGracePeriodSeconds: 1", "restartPolicy: Never"))
    pod.wait_phase("Succeeded", timeout=10)
    res = mpi.cli("exec", "shell", "--", "true")
    assert res.returncode != 0
    assert res.stderr.startswith("error:") and "not running" in res.stderr, res.stderr


def test_library_exec_with_large_input_does_not_deadlock(mpi):
    """``pod.exec(…, input=…)`` of a command that echoes its input (``cat``)
    must not block writing the input while the output pipe is full."""
    _started(mpi)
    script = textwrap.dedent(f"""
        import minipod
        rt = minipod.Runtime(root={mpi.root!r}, cgroup_parent={mpi.cgroup_parent!r})
        res = rt.pod("shell").exec("main", ["cat"], input=b"x" * 1_000_000, timeout=5)
        print(res.returncode, len(res.stdout))
    """)
    try:
        res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=8,
                             env=mpi.env, cwd=REPO)
    except subprocess.TimeoutExpired:
        raise AssertionError("pod.exec(['cat'], input=1 MB) deadlocked") from None
    assert res.stdout.split() == ["0", "1000000"], res.stderr
