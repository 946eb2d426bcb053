"""The image store: blobs, layers, index, resolve/list/remove, GC, and
concurrent writers. Pure files in temp dirs: no root needed."""

import gzip
import hashlib
import io
import json
import lzma
import multiprocessing
import os
import tarfile

import pytest

from minipod.errors import ImageError
from minipod.images import ImageStore, normalize_reference
from minipod.images import compression

MTIME = 1_600_000_000


def tar_bytes(files: dict[str, bytes], whiteouts=()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


def write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
          "history": [{"created": "2020-09-13T12:26:40Z", "created_by": "test"}]}


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "images")


@pytest.fixture
def base_tar(tmp_path):
    data = tar_bytes({"bin/sh": b"shell", "etc/os-release": b"ID=test\n"})
    return write(tmp_path / "base.tar", data), data


def test_store_creates_nothing_until_a_write(store):
    assert store.images() == []
    with pytest.raises(ImageError):
        store.resolve("busybox")
    with pytest.raises(ImageError):
        store.remove("busybox")
    assert store.gc().blobs == 0
    assert not os.path.exists(store.images_dir)


def test_missing_image_error_and_hint(store):
    with pytest.raises(ImageError) as info:
        store.resolve("busybox")
    assert str(info.value) == 'image "busybox" not found in the local store'
    assert info.value.hint == "import one with: minipod image import DIR busybox"


def test_add_image_lays_out_blobs_layers_and_index(store, base_tar):
    path, data = base_tar
    image = store.add_image(CONFIG, [path], "busybox")
    diff_id = sha256(data)

    assert image.ref == "docker.io/library/busybox:latest"
    assert image.familiar_ref == "busybox:latest"
    assert image.config == {"Cmd": ["sh"]}
    assert image.created == "2020-09-13T12:26:40Z"
    assert image.size == len(data)
    assert image.diff_ids == [diff_id]
    layer_dir = os.path.join(store.images_dir, "layers", diff_id[7:])
    assert image.layer_dirs == [layer_dir]
    with open(os.path.join(layer_dir, "bin/sh"), "rb") as f:
        assert f.read() == b"shell"
    assert os.path.isfile(layer_dir + ".json")

    # Uncompressed layer: its blob digest is its diff ID.
    blob = os.path.join(store.images_dir, "blobs", "sha256", diff_id[7:])
    with open(blob, "rb") as f:
        assert f.read() == data

    manifest_bytes = store.blobs.read(image.digest)
    assert image.digest == sha256(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": diff_id, "size": len(data)}]

    config_bytes = store.blobs.read(image.id)
    assert image.id == sha256(config_bytes) == manifest["config"]["digest"]
    config = json.loads(config_bytes)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    assert config["architecture"] == "amd64" and config["os"] == "linux"

    with open(os.path.join(store.images_dir, "index.json")) as f:
        index = json.load(f)
    assert index["refs"] == {"docker.io/library/busybox:latest": {"digest": image.digest, "config": image.id}}
    assert store.resolve("docker.io/library/busybox:latest") == image
    # The caller's dict is not changed.
    assert "rootfs" not in CONFIG


def test_gzip_layer_is_stored_compressed_and_diff_id_is_of_the_tar(store, tmp_path):
    data = tar_bytes({"a": b"A" * 10000})
    gz = gzip.compress(data, mtime=0)
    image = store.add_image(CONFIG, [write(tmp_path / "layer.bin", gz)], "gz")
    layer = image.manifest["layers"][0]
    assert layer == {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(gz), "size": len(gz)}
    assert image.diff_ids == [sha256(data)]
    assert image.size == len(gz)
    assert store.blobs.read(sha256(gz)) == gz


def test_xz_layer_is_stored_decompressed(store, tmp_path):
    data = tar_bytes({"a": b"xz"})
    image = store.add_image(CONFIG, [write(tmp_path / "layer", lzma.compress(data))], "xz")
    assert image.manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert image.manifest["layers"][0]["digest"] == image.diff_ids[0] == sha256(data)


def test_layers_are_ordered_bottom_first_and_shared(store, tmp_path, base_tar):
    base, base_data = base_tar
    top = write(tmp_path / "top.tar", tar_bytes({"app": b"app"}))
    one = store.add_image(CONFIG, [base, top], "one")
    inode = os.lstat(os.path.join(one.layer_dirs[0], "bin/sh")).st_ino
    two = store.add_image(CONFIG, [base], "two")
    assert one.layer_dirs[0] == two.layer_dirs[0]
    assert one.diff_ids[0] == sha256(base_data)
    assert os.listdir(one.layer_dirs[1]) == ["app"]
    # The shared layer was not unpacked again.
    assert os.lstat(os.path.join(two.layer_dirs[0], "bin/sh")).st_ino == inode
    assert [i.ref for i in store.images()] == ["docker.io/library/one:latest", "docker.io/library/two:latest"]


def test_resolve_by_name_id_and_digest(store, base_tar):
    image = store.add_image(CONFIG, [base_tar[0]], "minipod/busybox:1")
    hex_id = image.id[7:]
    for ref in ("minipod/busybox:1", "docker.io/minipod/busybox:1", "index.docker.io/minipod/busybox:1",
                image.id, hex_id, hex_id[:12], "sha256:" + hex_id[:12],
                "minipod/busybox@" + image.digest):
        assert store.resolve(ref).id == image.id, ref
    for ref in ("minipod/busybox", "minipod/busybox:2", "other@" + image.digest, "0000abcd"):
        with pytest.raises(ImageError, match="not found"):
            store.resolve(ref)


def test_a_name_wins_over_an_id_prefix(store, tmp_path, base_tar):
    first = store.add_image(CONFIG, [base_tar[0]], "first")
    prefix = first.id[7:13]
    other = dict(CONFIG, config={"Cmd": ["other"]})
    named = store.add_image(other, [base_tar[0]], prefix)  # an image *named* like the prefix
    assert store.resolve(prefix).id == named.id
    assert store.remove(prefix) == [f"docker.io/library/{prefix}:latest"]
    assert store.resolve("first").id == first.id


def test_invalid_reference_is_refused_before_writing(store, base_tar):
    with pytest.raises(ImageError, match="must be lowercase"):
        store.add_image(CONFIG, [base_tar[0]], "BusyBox")
    with pytest.raises(ImageError, match="must be lowercase"):
        store.resolve("BusyBox")
    assert not os.path.exists(store.images_dir)


def test_remove_collects_unused_blobs_and_layers(store, tmp_path, base_tar):
    base, base_data = base_tar
    top = write(tmp_path / "top.tar", tar_bytes({"app": b"app"}))
    one = store.add_image(CONFIG, [base, top], "one")
    two = store.add_image(dict(CONFIG, config={}), [base], "two")

    assert store.remove("one") == ["docker.io/library/one:latest"]
    # The top layer, its blob, one's config and manifest are gone; base stays.
    assert not os.path.exists(one.layer_dirs[1])
    assert not os.path.exists(one.layer_dirs[1] + ".json")
    assert os.path.isdir(two.layer_dirs[0])
    assert set(store.blobs.digests()) == {two.digest, two.id, sha256(base_data)}
    assert store.resolve("two") == two

    store.remove("two")
    assert store.blobs.digests() == []
    assert store.layers.diff_ids() == []
    assert os.listdir(os.path.join(store.images_dir, "layers")) == []
    assert store.images() == []


def test_remove_by_id_removes_every_reference(store, base_tar):
    image = store.add_image(CONFIG, [base_tar[0]], "a")
    store.add_image(CONFIG, [base_tar[0]], "b:1")
    assert store.remove(image.id[7:19]) == ["docker.io/library/a:latest", "docker.io/library/b:1"]
    assert store.images() == []
    assert store.blobs.digests() == []


def test_gc_waits_for_no_writer_and_removes_temporaries(store, base_tar):
    store.add_image(CONFIG, [base_tar[0]], "a")
    stale_blob = os.path.join(store.blobs.directory, ".tmp-dead")
    stale_layer = os.path.join(store.layers.directory, ".tmp-dead")
    os.mkdir(stale_layer)
    open(stale_blob, "w").close()
    with store.writing():
        assert store.gc(wait=False).skipped
        assert os.path.exists(stale_blob)
    report = store.gc()
    assert report.temporaries == 2 and report.blobs == 0 and report.layers == 0
    assert not os.path.exists(stale_blob) and not os.path.exists(stale_layer)
    assert store.resolve("a")


def test_config_bytes_are_kept_exactly_and_diff_ids_checked(store, base_tar):
    path, data = base_tar
    raw = (b'{"os": "linux", "architecture": "arm64", '
           b'"rootfs": {"type": "layers", "diff_ids": ["%s"]}}' % sha256(data).encode())
    image = store.add_image(raw, [path], "exact")
    assert image.id == sha256(raw)
    assert store.blobs.read(image.id) == raw

    wrong = {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    with pytest.raises(ImageError, match="does not match its diff ID"):
        store.add_image(wrong, [path], "wrong")
    with pytest.raises(ImageError, match="2 diff IDs for 1 layers"):
        store.add_image({"rootfs": {"diff_ids": [sha256(data)] * 2}}, [path], "wrong")
    with pytest.raises(ImageError, match="not found"):
        store.resolve("wrong")


def test_bad_layers_leave_no_image_and_no_layer(store, tmp_path, base_tar):
    evil = write(tmp_path / "evil.tar", tar_bytes({"../escape": b"x"}))
    corrupt = write(tmp_path / "corrupt.gz", gzip.compress(tar_bytes({"a": b"a" * 50000}))[:-200])
    for path, reason in ((evil, r"'\.\.'"), (corrupt, "corrupt compressed data|not a valid tar"),
                         (str(tmp_path / "missing.tar"), "no such file")):
        with pytest.raises(ImageError, match=reason):
            store.add_image(CONFIG, [base_tar[0], path], "bad")
    assert store.images() == []
    # The good base layer may be there; nothing half-done is.
    for name in os.listdir(store.layers.directory):
        assert not name.startswith(".tmp-"), name
    assert not (tmp_path / "escape").exists()


def test_damaged_image_is_reported_and_can_be_removed(store, base_tar):
    image = store.add_image(CONFIG, [base_tar[0]], "a")
    store.layers.remove(image.diff_ids[0])
    with pytest.raises(ImageError, match="is damaged: layer .* is missing") as info:
        store.resolve("a")
    assert "image rm" in info.value.hint
    assert store.images() == []
    assert store.remove("a") == ["docker.io/library/a:latest"]


def test_digests_from_documents_cannot_climb_out_of_the_store(store, base_tar):
    store.add_image(CONFIG, [base_tar[0]], "a")
    index_path = os.path.join(store.images_dir, "index.json")
    with open(index_path) as f:
        index = json.load(f)
    index["refs"]["docker.io/library/a:latest"]["digest"] = "sha256:../../../../etc/passwd"
    with open(index_path, "w") as f:
        json.dump(index, f)
    with pytest.raises(ImageError, match="invalid digest"):
        store.resolve("a")
    # GC cannot know what the image uses: it deletes nothing.
    assert store.gc().skipped
    assert len(store.blobs.digests()) == 3


def test_detect_compression_by_magic():
    data = tar_bytes({"a": b"a"})
    assert compression.detect_compression(data[:10]) == compression.NONE
    assert compression.detect_compression(gzip.compress(data)[:10]) == compression.GZIP
    assert compression.detect_compression(lzma.compress(data)[:10]) == compression.XZ
    import bz2
    assert compression.detect_compression(bz2.compress(data)[:10]) == compression.BZIP2
    assert compression.detect_compression(b"\x28\xb5\x2f\xfd\x00\x00") == compression.ZSTD
    # A plain tar whose first member is named "BZh..." is still a plain tar.
    assert compression.detect_compression(bz2.compress(b"")[:10]) == compression.BZIP2
    assert compression.detect_compression(tar_bytes({"BZh9-not-bzip2": b""})[:10]) == compression.NONE


def test_zstd_layer_needs_the_zstandard_module(store, tmp_path, base_tar):
    data = tar_bytes({"z": b"zstd"})
    try:
        import zstandard
    except ImportError:
        zstd_file = write(tmp_path / "layer.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
        with pytest.raises(ImageError, match="zstandard") as info:
            store.add_image(CONFIG, [zstd_file], "z")
        assert "pip install zstandard" in info.value.hint
        assert not os.path.exists(store.images_dir)
        return
    blob = zstandard.ZstdCompressor().compress(data)
    image = store.add_image(CONFIG, [write(tmp_path / "layer.zst", blob)], "z")
    assert image.manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert image.diff_ids == [sha256(data)]
    with open(os.path.join(image.layer_dirs[0], "z"), "rb") as f:
        assert f.read() == b"zstd"


def _add_in_child(images_dir, layer_path, ref, barrier, queue):
    try:
        barrier.wait(timeout=10)
        image = ImageStore(images_dir).add_image(CONFIG, [layer_path], ref)
        queue.put((ref, image.layer_dirs[0], None))
    except BaseException as exc:  # report everything to the parent
        queue.put((ref, None, repr(exc)))


def test_concurrent_add_of_the_same_layer_from_two_processes(tmp_path):
    # A big enough layer that both unpacks overlap.
    files = {f"dir{i % 10}/file{i}": os.urandom(2048) for i in range(600)}
    layer = write(tmp_path / "layer.tar", tar_bytes(files))
    images_dir = str(tmp_path / "images")
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        refs = [f"one:{round_}", f"two:{round_}"]
        procs = [ctx.Process(target=_add_in_child, args=(images_dir, layer, ref, barrier, queue)) for ref in refs]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
            assert proc.exitcode == 0
        assert [error for _, _, error in results] == [None, None], results
        assert results[0][1] == results[1][1]
        store = ImageStore(images_dir)
        if round_ == 0:
            inode = os.lstat(os.path.join(results[0][1], "dir0/file0")).st_ino
            # Both raced on an empty store: exactly one copy of the layer exists.
            assert store.layers.diff_ids() == [store.resolve(refs[0]).diff_ids[0]]
        for ref in refs:
            assert store.resolve(ref).layer_dirs == [results[0][1]]
        assert [n for n in os.listdir(store.layers.directory) if n.startswith(".tmp-")] == []
        assert [n for n in os.listdir(store.blobs.directory) if n.startswith(".tmp-")] == []
    assert os.lstat(os.path.join(results[0][1], "dir0/file0")).st_ino == inode
    assert len(store.images()) == 6


def test_normalize_reference_is_exported():
    assert normalize_reference("busybox") == "docker.io/library/busybox:latest"
