"""Image references are parsed and normalised as Docker does."""

import pytest

from minipod.errors import ImageError
from minipod.images import normalize_reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("given,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
    ("minipod/busybox:1", "docker.io/minipod/busybox:1"),
    ("a/b/c", "docker.io/a/b/c:latest"),
    ("quay.io/x/y", "quay.io/x/y:latest"),
    ("localhost/x", "localhost/x:latest"),
    ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
    (f"localhost:5000/a/b@{DIGEST}", f"localhost:5000/a/b@{DIGEST}"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}"),
    ("127.0.0.1:5000/app:v1.2-rc_3", "127.0.0.1:5000/app:v1.2-rc_3"),
    ("[::1]:5000/app", "[::1]:5000/app:latest"),
    ("my-registry.example.com/team/app__x.y-z:TAG", "my-registry.example.com/team/app__x.y-z:TAG"),
    # A first component with upper case is a registry host, as in Docker.
    ("Example/app", "Example/app:latest"),
    # "localhost:5000" alone is repository "localhost", tag "5000".
    ("localhost:5000", "docker.io/library/localhost:5000"),
])
def test_normalize(given, expected):
    assert normalize_reference(given) == expected


@pytest.mark.parametrize("given,reason", [
    ("", "at least one component"),
    ("BusyBox", "must be lowercase"),
    ("minipod/BusyBox:1", "must be lowercase"),
    ("ab" * 32, "64-byte hexadecimal"),
    ("busybox:", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("a/b/", "invalid reference format"),
    ("bad name", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@sha256:" + "a" * 63, "invalid reference format|digest length"),
    ("busybox@sha256:" + "a" * 65, "digest length"),
    ("busybox@sha256:" + "A" * 64, "digest format"),
    ("x" * 250 + "/y", "not be more than 255"),
])
def test_invalid_references(given, reason):
    with pytest.raises(ImageError, match=reason):
        normalize_reference(given)


def test_parts_and_familiar_forms():
    ref = parse_reference("busybox")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("docker.io", "library/busybox", "latest", None)
    assert ref.name == "docker.io/library/busybox"
    assert ref.familiar == "busybox:latest"
    assert parse_reference("minipod/app:1").familiar == "minipod/app:1"
    assert parse_reference("docker.io/library/a/b").familiar == "library/a/b:latest"
    assert parse_reference(f"quay.io/x/y@{DIGEST}").familiar == f"quay.io/x/y@{DIGEST}"


def test_normalizing_is_idempotent():
    for given in ("busybox", "minipod/busybox:1", f"localhost:5000/a/b@{DIGEST}", "quay.io/x/y"):
        once = normalize_reference(given)
        assert normalize_reference(once) == once
