"""The command line beyond the basics: `run` in the foreground (Ctrl-C,
stdin, JSON, what it prints), `ps` formats, `logs` options, restarts,
large output, and how errors look with and without --debug."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pod(name: str, command: list[str], *, policy: str = "Never", grace: int = 2, container: str = "c") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: {container}
    image: localhost/busybox:demo
    command: {json.dumps(command)}
"""


def _sh(name: str, script: str, **kw) -> str:
    return _pod(name, ["sh", "-c", script], **kw)


def _popen_cli(mpi, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    """The CLI as a child we can signal; SIGINT back to its default action,
    as in a terminal (a shell may have started us with it ignored)."""
    return subprocess.Popen([sys.executable, "-m", "minipod", *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=mpi.env, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _read_line(proc: subprocess.Popen, timeout: float = 5) -> bytes:
    """The next line of the child's stdout, or b"" if none came in time."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return b""
    return proc.stdout.readline()


def _finish(proc: subprocess.Popen, timeout: float = 10) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its handle
        out, err = proc.communicate()
        raise AssertionError(f"the command did not end in {timeout}s:\n{out!r}\n{err!r}") from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# ------------------------------------------------------------ run in the foreground

def test_ctrl_c_stops_the_pod_gracefully_and_exits_130(mpi, tmp_path):
    manifest = tmp_path / "loop.yaml"
    manifest.write_text(_sh("loop", "trap 'echo got-TERM; exit 0' TERM; echo started; "
                                    "while true; do sleep 0.1; done", policy="Always", grace=5))
    proc = _popen_cli(mpi, "run", str(manifest))
    first = _read_line(proc)
    assert first == b"c | started\n", first
    time.sleep(0.2)  # the trap is set once "started" is printed; let the loop run
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does to the command in a terminal
    code, out, err = _finish(proc)
    assert code == 130, (out, err)
    assert "c | got-TERM" in out.splitlines(), (out, err)  # SIGTERM first: graceful
    pod = mpi.runtime().pod("loop")
    assert pod.phase == "Succeeded"
    term = pod.container_status("c")["state"]["terminated"]
    assert term["exitCode"] == 0 and "signal" not in term
    assert pod.status["minipod"]["supervisorPid"] is None  # stopped, not detached
    assert mpi.cli("rm", "loop").returncode == 0  # a stopped pod needs no -f


def test_run_reads_the_manifest_from_stdin(mpi):
    res = mpi.cli("run", "-", input=_sh("stdin", "echo from-stdin"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "c | from-stdin\n"
    assert json.loads(mpi.cli("inspect", "stdin", check=True).stdout)["status"]["phase"] == "Succeeded"


def test_run_a_json_manifest(mpi, tmp_path):
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jsonpod", "labels": {"format": "json"}},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "localhost/busybox:demo", "command": ["echo", "from-json"]}]},
    }))
    res = mpi.cli("run", str(manifest))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "c | from-json\n"
    obj = json.loads(mpi.cli("inspect", "jsonpod", check=True).stdout)
    assert obj["metadata"]["labels"] == {"format": "json"}


def test_run_exit_code_is_the_failed_containers(mpi):
    res = mpi.cli("run", "-", input=_sh("fails", "echo bad >&2; exit 7"))
    assert res.returncode == 7, res.stderr
    assert res.stdout == "c | bad\n"  # stderr lines are shown too, prefixed the same way


def test_run_shows_a_last_line_without_newline(mpi):
    """`printf done` ends without a newline; `logs` shows it, so must `run`."""
    res = mpi.cli("run", "-", input=_pod("printf", ["printf", "no-newline-at-end"]))
    assert res.returncode == 0, res.stderr
    assert list(mpi.runtime().pod("printf").logs("c")) == ["no-newline-at-end"]
    assert res.stdout == "c | no-newline-at-end\n", repr(res.stdout)


def test_run_keeps_lines_after_bytes_that_are_not_utf8(mpi):
    """A Latin-1 'café' then more lines a moment later: no line may be lost
    (`logs` has them all)."""
    res = mpi.cli("run", "-", input=_sh("latin1", r"printf 'caf\351\n'; sleep 0.5; echo after-1; echo after-2"))
    assert res.returncode == 0, res.stderr
    assert [line for line in mpi.runtime().pod("latin1").logs("c")] == ["caf\ufffd\n", "after-1\n", "after-2\n"]
    assert res.stdout.splitlines() == ["c | caf\ufffd", "c | after-1", "c | after-2"], repr(res.stdout)


def test_run_does_not_split_lines_at_carriage_returns(mpi):
    r"""A progress line redrawn with \r is one line: `run` must show all of it."""
    # bytes, not text: text mode would turn the \r into a newline itself
    res = subprocess.run([sys.executable, "-m", "minipod", "run", "-"], capture_output=True, env=mpi.env,
                         cwd=REPO, timeout=30, input=_sh("progress", r"printf 'half\rdone\n'; echo next").encode())
    assert res.returncode == 0, res.stderr
    assert list(mpi.runtime().pod("progress").logs("c")) == ["half\rdone\n", "next\n"]
    assert res.stdout == b"c | half\rdone\nc | next\n", res.stdout


def test_large_fast_output_is_complete_and_in_order(mpi):
    res = mpi.cli("run", "-", input=_pod("seq", ["seq", "1", "200000"]), timeout=30)
    assert res.returncode == 0, res.stderr
    expected = [str(i) for i in range(1, 200001)]
    assert [line.removeprefix("c | ") for line in res.stdout.splitlines()] == expected
    logs = mpi.cli("logs", "seq", check=True).stdout.splitlines()
    assert logs == expected
    assert mpi.cli("logs", "seq", "--tail", "2", check=True).stdout == "199999\n200000\n"


# ------------------------------------------------------------ ps

def test_ps_formats_and_completed_pods(mpi):
    rt = mpi.runtime()
    ok = rt.run(_sh("done-ok", "exit 0"))
    bad = rt.run(_sh("done-bad", "exit 2"))
    runner = rt.run(_pod("runner", ["sleep", "3600"], policy="Always", grace=1))
    ok.wait_phase("Succeeded", timeout=10)
    bad.wait_phase("Failed", timeout=10)
    runner.wait_ready(10)

    plain = mpi.cli("ps", check=True).stdout.splitlines()
    assert [line.split()[0] for line in plain[1:]] == ["runner"]  # ended pods only with -a
    rows = {line.split()[0]: line.split() for line in mpi.cli("ps", "-a", check=True).stdout.splitlines()[1:]}
    assert set(rows) == {"done-ok", "done-bad", "runner"}
    assert rows["done-ok"][1:4] == ["0/1", "Completed", "0"]
    assert rows["done-bad"][1:4] == ["0/1", "Error", "0"]
    assert rows["runner"][1:4] == ["1/1", "Running", "0"]

    wide = mpi.cli("ps", "-o", "wide", check=True).stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NAMESPACE", "SUPERVISOR"]
    row = wide[1].split()
    sup = runner.status["minipod"]["supervisorPid"]
    assert row[0] == "runner" and row[6] == "default" and row[7] == str(sup)

    listed = yaml.safe_load(mpi.cli("ps", "-a", "-o", "yaml", check=True).stdout)
    assert sorted(p["metadata"]["name"] for p in listed) == ["done-bad", "done-ok", "runner"]
    by_name = {p["metadata"]["name"]: p for p in listed}
    assert by_name["done-bad"]["status"]["phase"] == "Failed"
    assert by_name["done-bad"]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    assert all(p["kind"] == "Pod" and p["apiVersion"] == "v1" for p in listed)
    as_json = json.loads(mpi.cli("ps", "-a", "-o", "json", check=True).stdout)
    assert [p["metadata"]["uid"] for p in as_json] == [p["metadata"]["uid"] for p in listed]


def test_container_id_has_one_form(mpi):
    """containerStatuses[].containerID and state.terminated.containerID name
    the same container; Kubernetes writes both as ``<runtime>://<id>``."""
    pod = mpi.runtime().run(_sh("ids", "exit 0"))
    pod.wait_phase("Succeeded", timeout=10)
    c = pod.container_status("c")
    assert c["state"]["terminated"]["containerID"] == c["containerID"], c
    assert re.fullmatch(r"[a-z]+://[0-9a-f]+", c["containerID"]), c["containerID"]


# ------------------------------------------------------------ logs

def test_logs_follow_streams_new_lines_and_ends_with_the_container(mpi):
    mpi.cli("run", "-d", "-", input=_sh("follow", "echo one; sleep 1.5; echo two; sleep 0.3; echo three"),
            check=True)
    proc = _popen_cli(mpi, "logs", "-f", "follow")
    assert _read_line(proc, timeout=3) == b"one\n"
    # it came while the container was still going, not all at the end
    assert "two\n" not in list(mpi.runtime().pod("follow").logs("c")), "the first line came late"
    code, out, err = _finish(proc)
    assert code == 0, err
    assert out == "two\nthree\n"  # then it ended by itself, with the container


def test_logs_tail_previous_and_container_choice(mpi):
    pod = mpi.runtime().run("""
apiVersion: v1
kind: Pod
metadata: {name: several}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: prep, image: localhost/busybox:demo, command: ["echo", "prepared"]}
  containers:
  - {name: a, image: localhost/busybox:demo, command: ["sh", "-c", "seq 1 5; exec sleep 3600"]}
  - {name: b, image: localhost/busybox:demo, command: ["sh", "-c", "echo b-up; exec sleep 3600"]}
""")
    pod.wait_ready(10)
    pod.wait(lambda p: len(list(p.logs("a"))) == 5, timeout=5)
    res = mpi.cli("logs", "several")
    assert res.returncode != 0 and res.stderr.startswith("error:")
    assert "choose one with -c" in res.stderr and "a, b" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert mpi.cli("logs", "several", "-c", "a", "--tail", "2", check=True).stdout == "4\n5\n"
    assert mpi.cli("logs", "several", "-c", "a", "--tail", "0", check=True).stdout == ""
    assert mpi.cli("logs", "several", "-c", "a", "--tail", "50", check=True).stdout == "1\n2\n3\n4\n5\n"
    assert mpi.cli("logs", "several", "-c", "prep", check=True).stdout == "prepared\n"
    res = mpi.cli("logs", "several", "-c", "a", "--previous")
    assert res.returncode != 0
    assert res.stderr.strip() == 'error: previous terminated container "a" not found', res.stderr
    res = mpi.cli("logs", "several", "-c", "zzz")
    assert res.returncode != 0 and 'container "zzz" not found' in res.stderr


# ------------------------------------------------------------ restarts

COUNTER = ("n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; "
           "echo run-$n; sleep 0.2; exit 0")


def _counting_pod(name: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Always
  containers:
  - name: c
    image: localhost/busybox:demo
    command: ["sh", "-c", "{COUNTER}"]
    volumeMounts: [{{name: state, mountPath: /state}}]
  volumes: [{{name: state, emptyDir: {{}}}}]
"""


def _in_back_off(pod) -> bool:
    return (pod.container_status("c")["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff"


def test_restart_always_restarts_a_container_that_exits_0(mpi):
    pod = mpi.runtime().run(_counting_pod("again"))
    pod.wait(lambda p: p.container_status("c")["restartCount"] >= 1, timeout=5)
    c = pod.container_status("c")
    assert c["lastState"]["terminated"]["exitCode"] == 0
    assert c["lastState"]["terminated"]["reason"] == "Completed"
    assert pod.phase == "Running"  # Always: the pod never completes
    row = mpi.cli("ps", check=True).stdout.splitlines()[1].split()
    assert row[0] == "again" and int(row[3]) >= 1


def test_logs_during_crash_loop_back_off_show_the_last_run(mpi):
    """After two runs the container waits 10 s (back-off). `kubectl logs`
    then shows the run that just ended; that is how people debug a crash
    loop."""
    pod = mpi.runtime().run(_counting_pod("crashloop"))
    pod.wait(_in_back_off, timeout=5)
    assert list(pod.logs("c", previous=True)) == ["run-2\n"]
    assert mpi.cli("logs", "crashloop", check=True).stdout == "run-2\n"


def test_restart_count_counts_restarts_that_happened(mpi):
    """Two runs so far (the second is waiting out its back-off): one
    restart, as kubelet counts it."""
    pod = mpi.runtime().run(_counting_pod("counted"))
    pod.wait(_in_back_off, timeout=5)
    log_dir = os.path.join(pod.status["minipod"]["logDir"], "c")
    runs = len([n for n in os.listdir(log_dir) if n.endswith(".log")])
    assert runs == 2, os.listdir(log_dir)
    assert pod.container_status("c")["restartCount"] == runs - 1


# ------------------------------------------------------------ errors

def test_debug_shows_a_traceback_plain_errors_are_one_line(mpi):
    for args in (["inspect", "nope"], ["image", "inspect", "nope:1"], ["run", "/no/such.yaml"]):
        plain = mpi.cli(*args)
        assert plain.returncode != 0
        assert "Traceback" not in plain.stderr
        assert plain.stderr.startswith("error: "), plain.stderr
        lines = plain.stderr.strip().splitlines()
        assert len(lines) <= 2 and all(ln.startswith(("error: ", "hint: ")) for ln in lines), lines
        debug = mpi.cli("--debug", *args)
        assert debug.returncode == plain.returncode
        assert "Traceback (most recent call last):" in debug.stderr, debug.stderr
        assert lines[0] in debug.stderr  # the same message, after the traceback
