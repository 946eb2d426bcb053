"""A layer in the store is only reused for a blob that was checked to
decompress to it: an image whose config names another image's layer (by
its diff ID) next to a blob of its own must not get that layer."""

import gzip
import threading

import pytest

from minipod.errors import ImageError
from minipod.images import ImageStore
from minipod.images.pull import Progress, _stage_layer, _StagedLayer

from test_images_store import CONFIG, sha256, tar_bytes, write


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "images")


@pytest.fixture
def private_and_other(store, tmp_path):
    """A "private" image and an unrelated one, both with gzip layers."""
    private_gz = gzip.compress(tar_bytes({"secret": b"private data"}))
    other_gz = gzip.compress(tar_bytes({"evil": b"x"}))
    private = store.add_image(CONFIG, [write(tmp_path / "p.tar.gz", private_gz)], "private")
    other = store.add_image(CONFIG, [write(tmp_path / "o.tar.gz", other_gz)], "other")
    return private, other, sha256(private_gz), sha256(other_gz)


def test_add_image_checks_a_new_pairing_and_remembers_a_good_one(store, tmp_path, private_and_other):
    private, _, private_blob, other_blob = private_and_other
    assert store.layers.known_blobs(private.diff_ids[0]) == [private_blob]
    claim = {**CONFIG, "rootfs": {"type": "layers", "diff_ids": [private.diff_ids[0]]}}
    evil = write(tmp_path / "evil.tar.gz", gzip.compress(tar_bytes({"evil": b"x"})))
    with pytest.raises(ImageError, match="does not match its diff ID"):
        store.add_image(claim, [evil], "evil")
    assert store.layers.known_blobs(private.diff_ids[0]) == [private_blob]


def test_pull_does_not_pair_a_stored_blob_with_a_layer_it_does_not_make(store, private_and_other):
    private, other, private_blob, other_blob = private_and_other
    desc = {"digest": other_blob, "size": store.blobs.size(other_blob),
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}
    staged = _StagedLayer(desc, private.diff_ids[0])  # the manifest's blob, the config's claim
    with store.writing():
        with pytest.raises(ImageError, match="does not match its diff ID"):
            _stage_layer(None, store, staged, Progress(enabled=False), threading.Event())
    staged.discard()
    # The honest pairing is known: nothing to download, decompress or unpack.
    honest = _StagedLayer(dict(desc, digest=private_blob), private.diff_ids[0])
    with store.writing():
        _stage_layer(None, store, honest, Progress(enabled=False), threading.Event())
    assert honest.result is None and honest.blob_tmp is None and not honest.verified_pairing
