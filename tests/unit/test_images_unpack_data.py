"""File contents come out of the layer byte for byte, whatever their size,
whatever follows them, and sparse members keep their holes' zeros."""

import io
import shutil
import subprocess
import tarfile

import pytest

from minipod.images.compression import CHUNK
from minipod.images.unpack import unpack_layer


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_contents_of_many_sizes_then_more_entries(tmp_path):
    files = {f"f{n}": bytes([n % 251]) * n for n in (0, 1, 511, 512, 513, CHUNK - 1, CHUNK, 2 * CHUNK + 123)}
    files["after"] = b"the entry after the big ones\n"
    target = tmp_path / "layer"
    target.mkdir()
    unpack_layer(io.BytesIO(_tar(files)), str(target))
    for name, data in files.items():
        assert (target / name).read_bytes() == data, name


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar makes the sparse archive")
def test_sparse_member_is_written_with_its_holes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(3 << 20)
        f.write(b"tail")
    (src / "next").write_bytes(b"next\n")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(archive), "-C", str(src), "sparse", "next"],
                   check=True)
    with tarfile.open(archive) as tar:
        assert tar.getmember("sparse").issparse(), "tar did not write a sparse member"
    target = tmp_path / "layer"
    target.mkdir()
    with open(archive, "rb") as f:
        unpack_layer(f, str(target))
    assert (target / "sparse").read_bytes() == (src / "sparse").read_bytes()
    assert (target / "next").read_bytes() == b"next\n"
