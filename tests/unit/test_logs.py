"""The CRI log format: writing, parsing, reading, tail and follow."""

import errno
import os
import random
import stat
import threading
import time

import pytest

from minipod import logs
from minipod.errors import KernelError
from minipod.logs import (LogWriter, follow_logs, format_timestamp, log_dir, log_path, parse_line,
                          read_log)

T0 = 1767323045_123456789  # 2026-01-02T03:04:05.123456789Z
TS = "2026-01-02T03:04:05.123456789Z"


class Clock:
    """A clock the test moves: one nanosecond per reading."""

    def __init__(self, start=T0):
        self.now = start

    def __call__(self):
        self.now += 1
        return self.now - 1


def records(path):
    with open(path, "rb") as f:
        return f.read().decode().splitlines(keepends=True)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "logs" / "default_web_u1" / "app" / "0.log")


# -- paths and timestamps -------------------------------------------------------

def test_paths():
    assert log_dir("/var/log/minipod/pods", "default", "web", "u1") == "/var/log/minipod/pods/default_web_u1"
    assert log_path("/r", "ns", "web", "u1", "app", 3) == "/r/ns_web_u1/app/3.log"


def test_timestamp_format():
    assert format_timestamp(T0) == TS
    assert format_timestamp(T0 - 123456789 + 5) == "2026-01-02T03:04:05.000000005Z"
    # the cached second is not reused for another second
    assert format_timestamp(T0 + 1_000_000_000) == "2026-01-02T03:04:06.123456789Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000000000Z"


# -- writing --------------------------------------------------------------------

def test_lines_are_written_as_full_records(path):
    with LogWriter(path, clock=Clock()) as w:
        w.write("stdout", b"hello world\n\nbye\n")
    assert records(path) == [
        "2026-01-02T03:04:05.123456789Z stdout F hello world\n",
        "2026-01-02T03:04:05.123456789Z stdout F \n",
        "2026-01-02T03:04:05.123456789Z stdout F bye\n",
    ]


def test_files_and_dirs_are_made_with_their_modes(path):
    old = os.umask(0o022)
    try:
        LogWriter(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o755


def test_writer_appends_to_an_existing_log(path):
    with LogWriter(path, clock=Clock()) as w:
        w.write("stdout", b"one\n")
    with LogWriter(path, clock=Clock()) as w:
        w.write("stdout", b"two\n")
    assert list(read_log(path)) == ["one\n", "two\n"]


def test_an_incomplete_line_waits_for_its_newline_and_streams_do_not_mix(path):
    clock = Clock()
    w = LogWriter(path, clock=clock)
    w.write("stdout", b"hel")
    assert records(path) == []
    w.write("stderr", b"oops\n")
    w.write("stdout", b"lo\n")
    w.close()
    assert [r.split(" ", 1)[1] for r in records(path)] == ["stderr F oops\n", "stdout F hello\n"]


def test_long_lines_are_split_into_partial_records(path):
    w = LogWriter(path, clock=Clock())
    w.write("stdout", b"a" * 16384 + b"\n")           # exactly the limit: one record
    w.write("stdout", b"b" * 16385 + b"\n")           # one byte over: P + F
    w.write("stdout", b"c" * 40000 + b"\n")           # P, P, F
    w.close()
    shape = [(r.split(" ")[2], len(r.split(" ", 3)[3]) - 1) for r in records(path)]
    assert shape == [("F", 16384), ("P", 16384), ("F", 1), ("P", 16384), ("P", 16384), ("F", 40000 - 32768)]
    assert list(read_log(path)) == ["a" * 16384 + "\n", "b" * 16385 + "\n", "c" * 40000 + "\n"]


def test_an_endless_line_is_written_as_it_comes(path):
    w = LogWriter(path, clock=Clock(), max_line=10)
    w.write("stdout", b"x" * 25)
    # two full chunks are out already; 5 bytes wait for more
    assert [r.split(" ", 2)[2] for r in records(path)] == ["P xxxxxxxxxx\n", "P xxxxxxxxxx\n"]
    w.write("stdout", b"yy\n")
    w.close()
    assert list(read_log(path)) == ["x" * 25 + "yy\n"]


def test_output_without_final_newline_is_a_partial_record_at_close(path):
    w = LogWriter(path, clock=Clock())
    w.write("stdout", b"line\nprompt> ")
    w.write("stderr", b"no newline either")
    w.close()
    w.close()  # idempotent
    tags = [r.split(" ", 3)[1:3] for r in records(path)]
    assert tags == [["stdout", "F"], ["stdout", "P"], ["stderr", "P"]]
    assert records(path)[1].endswith(" stdout P prompt> \n")
    # kubelet gives such a line back as it is: no newline added
    assert list(read_log(path)) == ["line\n", "prompt> ", "no newline either"]


def test_flush_partial_then_rest_of_the_line_reads_as_one_line(path):
    w = LogWriter(path, clock=Clock())
    w.write("stdout", b"Name: ")
    w.flush_partial("stdout")
    assert records(path)[0].endswith(" stdout P Name: \n")
    w.write("stdout", b"bob\n")
    w.close()
    assert list(read_log(path)) == ["Name: bob\n"]


def test_writer_refuses_bad_use(path):
    w = LogWriter(path)
    with pytest.raises(ValueError, match="stdout or stderr"):
        w.write("stdin", b"x\n")
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write("stdout", b"late\n")


def test_writer_open_failure_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(KernelError) as info:
        LogWriter(str(blocker / "app" / "0.log"))
    # args[0] is the one-line message (see the report about KernelError.__str__)
    assert info.value.args[0] == f"open log {blocker}/app/0.log: Not a directory"
    assert info.value.errno == errno.ENOTDIR


def test_writers_in_two_threads_never_interleave_records(path):
    w = LogWriter(path)

    def pump(stream, char):
        for i in range(2000):
            w.write(stream, (char * (i % 50) + "\n").encode())

    threads = [threading.Thread(target=pump, args=args) for args in (("stdout", "o"), ("stderr", "e"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    lines = records(path)
    assert len(lines) == 4000
    for line in lines:
        _ts, stream, tag, content = parse_line(line)
        assert tag == "F" and set(content) <= {"o" if stream == "stdout" else "e"}


# -- parsing --------------------------------------------------------------------

def test_parse_line():
    assert parse_line(f"{TS} stdout F hello  world\n") == (TS, "stdout", "F", "hello  world")
    assert parse_line(f"{TS} stderr P part") == (TS, "stderr", "P", "part")
    assert parse_line(f"{TS} stdout F \n") == (TS, "stdout", "F", "")
    # forward compatible tags, other offsets, fewer fraction digits
    assert parse_line("2026-01-02T03:04:05.5+02:00 stdout F:x y\n")[2:] == ("F", "y")
    assert parse_line("2026-01-02T03:04:05Z stdout F y")[0] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("line", [
    "",
    "garbage",
    f"{TS}",
    f"{TS} stdout",
    f"{TS} stdout F",                      # no separator before the content
    "yesterday stdout F x",
    "2026-01-02 03:04:05Z stdout F x",
    f"{TS} stdin F x",
    f"{TS} stdout X x",
    f"{TS}  stdout F x",
])
def test_malformed_lines_are_refused(line):
    with pytest.raises(ValueError):
        parse_line(line)


# -- reading --------------------------------------------------------------------

def write_raw(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def test_malformed_records_are_skipped(path):
    write_raw(path, f"{TS} stdout F one\nnot a log line\n{TS} stdin F x\n{TS} stdout F two\n")
    assert list(read_log(path)) == ["one\n", "two\n"]


def test_streams_filter_and_timestamps(path):
    write_raw(path, "2026-01-02T03:04:05.000000001Z stdout P a\n"
                    "2026-01-02T03:04:05.000000002Z stderr F e\n"
                    "2026-01-02T03:04:05.000000003Z stdout F b\n")
    assert list(read_log(path, streams=("stderr",))) == ["e\n"]
    # a joined line carries the timestamp of its first piece
    assert list(read_log(path, timestamps=True)) == [
        "2026-01-02T03:04:05.000000002Z e\n", "2026-01-02T03:04:05.000000001Z ab\n"]


def test_a_record_being_written_is_not_read_yet(path):
    write_raw(path, f"{TS} stdout F done\n{TS} stdout F hal")
    assert list(read_log(path)) == ["done\n"]
    assert list(read_log(path, tail=5)) == ["done\n"]


def test_characters_cut_by_a_split_are_joined_and_bad_bytes_replaced(path):
    w = LogWriter(path, clock=Clock(), max_line=3)
    w.write("stdout", "héllo\n".encode())   # é is cut between two records
    w.write("stdout", b"bad \xff byte\n")
    w.close()
    assert list(read_log(path)) == ["héllo\n", "bad \ufffd byte\n"]


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(KernelError) as info:
        list(read_log(str(tmp_path / "none.log")))
    assert info.value.args[0] == f"read log {tmp_path}/none.log: No such file or directory"
    assert info.value.errno == errno.ENOENT


def test_reading_while_a_writer_appends(path):
    w = LogWriter(path)
    w.write("stdout", b"one\ntw")
    assert list(read_log(path)) == ["one\n"]
    w.write("stdout", b"o\n")
    assert list(read_log(path)) == ["one\n", "two\n"]
    w.close()


# -- tail -----------------------------------------------------------------------

def test_tail_basics(path):
    with LogWriter(path, clock=Clock()) as w:
        for i in range(10):
            w.write("stdout", f"line {i}\n".encode())
    assert list(read_log(path, tail=3)) == ["line 7\n", "line 8\n", "line 9\n"]
    assert list(read_log(path, tail=0)) == []
    assert len(list(read_log(path, tail=100))) == 10
    assert len(list(read_log(path, tail=-1))) == 10
    assert list(read_log(path, tail=1, timestamps=True))[0].endswith("Z line 9\n")


def test_tail_keeps_split_lines_whole_across_streams(path):
    with LogWriter(path, clock=Clock(), max_line=4) as w:
        w.write("stdout", b"0123456789")        # P P now, the rest later
        w.write("stderr", b"err\n")
        w.write("stdout", b"AB\n")
        w.write("stderr", b"tail without newline")
    assert list(read_log(path, tail=1)) == ["tail without newline"]
    assert list(read_log(path, tail=2)) == ["0123456789AB\n", "tail without newline"]
    assert list(read_log(path, tail=2, streams=("stdout",))) == ["0123456789AB\n"]


@pytest.mark.parametrize("seed", range(30))
def test_tail_agrees_with_reading_everything(path, monkeypatch, seed):
    # Small blocks so that records straddle block boundaries.
    monkeypatch.setattr(logs, "_READ_BLOCK", 7 + seed)
    rng = random.Random(seed)
    with LogWriter(path, clock=Clock(), max_line=rng.choice([3, 5, 16384])) as w:
        for _ in range(rng.randrange(0, 40)):
            stream = rng.choice(["stdout", "stderr"])
            text = "".join(rng.choice("ab\n") for _ in range(rng.randrange(0, 12)))
            w.write(stream, text.encode())
    if rng.random() < 0.3:
        write_raw(path, "junk line\n")
    for streams in (("stdout", "stderr"), ("stdout",), ("stderr",)):
        everything = list(read_log(path, streams=streams))
        for n in range(0, len(everything) + 2):
            assert list(read_log(path, tail=n, streams=streams)) == everything[max(0, len(everything) - n):], (streams, n)


# -- follow ---------------------------------------------------------------------

def test_follow_sees_lines_as_they_are_written_and_ends_on_stop(path):
    w = LogWriter(path)
    w.write("stdout", b"before\n")
    done = threading.Event()

    def produce():
        for i in range(50):
            w.write("stdout", f"line {i}\n".encode())
            if i % 10 == 0:
                time.sleep(0.01)
        w.write("stdout", b"unfinished")
        w.close()
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    got = list(follow_logs(lambda: path, poll=0.005, stop=done.is_set))
    t.join()
    assert got == ["before\n"] + [f"line {i}\n" for i in range(50)] + ["unfinished"]


def test_follow_waits_for_the_file_then_switches_on_restart(tmp_path):
    first = str(tmp_path / "app" / "0.log")
    second = str(tmp_path / "app" / "1.log")
    current = {"path": None}
    out = []
    done = threading.Event()

    def consume():
        out.extend(follow_logs(lambda: current["path"], poll=0.005, stop=done.is_set))

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.03)                       # no file yet: it waits
    current["path"] = first
    time.sleep(0.03)                       # named but not created yet
    with LogWriter(first) as w:
        w.write("stdout", b"run 0\ncrash")
    time.sleep(0.03)
    with LogWriter(second) as w:
        w.write("stderr", b"run 1\n")
        current["path"] = second
        time.sleep(0.03)
        w.write("stdout", b"still run 1\n")
    done.set()
    t.join(timeout=5)
    assert not t.is_alive()
    assert out == ["run 0\n", "crash", "run 1\n", "still run 1\n"]


def test_follow_with_tail_and_timestamps(path):
    with LogWriter(path, clock=Clock()) as w:
        for i in range(5):
            w.write("stdout", f"{i}\n".encode())
    got = list(follow_logs(lambda: path, stop=lambda: True, tail=2, timestamps=True))
    assert got == ["2026-01-02T03:04:05.123456792Z 3\n", "2026-01-02T03:04:05.123456793Z 4\n"]


def test_follow_does_not_read_a_record_in_progress_until_it_is_done(path):
    write_raw(path, f"{TS} stdout F a\n{TS} stdout F b")
    stopped = threading.Event()
    gen = follow_logs(lambda: path, poll=0.001, stop=stopped.is_set)
    assert next(gen) == "a\n"
    write_raw(path, "c\n")
    write_raw(path, f"{TS} stdout F the end\n")
    stopped.set()
    assert list(gen) == ["bc\n", "the end\n"]


def test_follow_drops_nothing_written_before_stop(path):
    # stop() turns true right after the last write: that write is still read
    w = LogWriter(path)
    state = {"n": 0}

    def stop():
        state["n"] += 1
        if state["n"] == 3:
            w.write("stdout", b"last words\n")
            return True
        return False

    assert list(follow_logs(lambda: path, poll=0.001, stop=stop)) == ["last words\n"]
    w.close()
