"""``image prune`` and ``image rm -f`` at the store level: GC keeps the
layers pods still use, counts what it frees, waits for writers (a pull in
progress), and collects what interrupted writers left."""

import multiprocessing
import os
import threading
import time

import pytest

from minipod.images import ImageStore

from test_images_store import CONFIG, tar_bytes, write


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "images")


@pytest.fixture
def two_images(store, tmp_path):
    """Images "a" (base) and "b" (base + top): they share the base layer."""
    base = write(tmp_path / "base.tar", tar_bytes({"bin/sh": b"shell" * 1000}))
    top = write(tmp_path / "top.tar", tar_bytes({"app/run": b"app" * 5000}))
    return store.add_image(CONFIG, [base], "a"), store.add_image(CONFIG, [base, top], "b")


def _layer_dirs(store) -> list[str]:
    return [d for d in store.layers.diff_ids() if store.layers.has(d)]


def test_prune_with_nothing_unused_frees_nothing(store, two_images):
    untagged, report = store.prune()
    assert untagged == [] and (report.blobs, report.layers, report.temporaries, report.freed) == (0, 0, 0, 0)
    assert {i.ref for i in store.images()} == {"docker.io/library/a:latest", "docker.io/library/b:latest"}


def test_layers_a_pod_uses_outlive_the_image_until_the_pod_is_gone(store, two_images):
    a, b = two_images
    pod_layers = set(b.diff_ids)  # a pod was made from b; b is then removed with -f
    assert store.remove("b", keep_layers=lambda: pod_layers) == ["docker.io/library/b:latest"]
    assert set(_layer_dirs(store)) == set(b.diff_ids)  # the top layer stays for the pod
    assert os.path.isfile(os.path.join(b.layer_dirs[1], "app/run"))
    # A pod needs only the unpacked layers: b's manifest, config and top blob go.
    assert not store.blobs.exists(b.digest) and not store.blobs.exists(b.id)

    _, report = store.prune(keep_layers=pod_layers)  # the pod is still there
    assert report.layers == 0
    _, report = store.prune(keep_layers=())  # the pod is gone
    assert report.layer_ids == [b.diff_ids[1]] and report.layers == 1
    assert report.freed >= 15000  # the top layer's file, at least
    assert _layer_dirs(store) == a.diff_ids and store.resolve("a") == a


def test_prune_all_untags_images_no_pod_uses(store, two_images):
    a, b = two_images
    untagged, report = store.prune(unused_images=True, used_image_ids=[a.id], keep_layers=set(a.diff_ids))
    assert untagged == ["docker.io/library/b:latest"]  # a pod was made from a
    assert report.layer_ids == [b.diff_ids[1]] and store.images() == [a]
    untagged, report = store.prune(unused_images=True, used_image_ids=[])
    assert untagged == ["docker.io/library/a:latest"]
    assert report.layers == 1 and store.blobs.digests() == [] and store.images() == []
    assert report.freed > 0


def test_layer_diff_id_of_a_layer_dir(store, two_images):
    a, _ = two_images
    assert store.layer_diff_id(a.layer_dirs[0]) == a.diff_ids[0]
    assert store.layer_diff_id(a.layer_dirs[0] + "/bin") is None
    assert store.layer_diff_id("/somewhere/else/" + a.diff_ids[0][7:]) is None


def test_prune_waits_for_a_writer_and_collects_its_leftovers_once_it_died(store, two_images):
    """A pull holds ``writing()`` while its blobs and layers exist without a
    name: prune must neither delete them nor run meanwhile."""
    a, b = two_images
    store.remove("b", keep_layers=set(a.diff_ids) | set(b.diff_ids))  # an unreferenced layer, as a pull leaves
    staged_blob = store.blobs.temp_file()
    staged_layer = store.layers.temp_dir()
    with open(staged_blob, "wb") as f:
        f.write(b"x" * 10000)
    finished = threading.Event()
    reports = []

    def prune():
        reports.append(store.prune())
        finished.set()

    with store.writing():  # the pull in progress
        thread = threading.Thread(target=prune)
        thread.start()
        time.sleep(0.3)
        assert not finished.is_set(), "prune ran while a writer held the store"
        assert os.path.exists(staged_blob) and os.path.isdir(staged_layer)
    thread.join(10)
    assert finished.is_set()
    _, report = reports[0]
    # The writer is gone (as a killed pull would be): its temporaries and
    # the layer nothing names are collected.
    assert report.temporaries == 2 and report.layers == 1 and report.freed >= 10000
    assert not os.path.exists(staged_blob) and not os.path.exists(staged_layer)
    assert store.resolve("a") == a


def _hold_writer(images_dir, ready, release):
    store = ImageStore(images_dir)
    with store.writing():
        with open(store.blobs.temp_file(), "wb") as f:
            f.write(b"half a layer")
        ready.set()
        release.wait(20)


def test_remove_does_not_wait_for_a_writer_in_another_process(store, two_images):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_writer, args=(store.images_dir, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        started = time.monotonic()
        store.remove("b")  # untags at once; its GC is skipped while the writer is busy
        assert time.monotonic() - started < 2
        assert len(_layer_dirs(store)) == 2
    finally:
        release.set()
        proc.join(10)
    _, report = store.prune()
    assert report.layers == 1 and report.temporaries == 1
