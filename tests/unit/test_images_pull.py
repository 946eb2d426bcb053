"""Pull logic without a network: auth challenges, credentials, manifest
types and platform selection."""

from __future__ import annotations

import base64
import json

import pytest

from minipod.errors import ImageError
from minipod.images.pull import (DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, check_image_manifest,
                                 manifest_media_type, select_platform)
from minipod.images.registry import (RegistryClient, docker_config_credentials, is_loopback, parse_creds,
                                     parse_www_authenticate, registry_endpoint)

DIGEST = "sha256:" + "a" * 64


def test_www_authenticate_bearer_and_basic():
    scheme, params = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/busybox:pull"}
    assert parse_www_authenticate('Basic realm="a \\"quoted\\" realm"') == ("basic", {"realm": 'a "quoted" realm'})
    assert parse_www_authenticate("Bearer realm=http://x/t, service=s") == (
        "bearer", {"realm": "http://x/t", "service": "s"})


def test_creds_and_docker_config(tmp_path):
    assert parse_creds("u:p:q") == ("u", "p:q")
    with pytest.raises(ImageError, match="USER:PASSWORD"):
        parse_creds("nocolon")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "127.0.0.1:5000": {"username": "me", "password": "secret"}}}))
    assert docker_config_credentials("docker.io", str(path)) == ("hub", "pw")
    assert docker_config_credentials("127.0.0.1:5000", str(path)) == ("me", "secret")
    assert docker_config_credentials("quay.io", str(path)) is None
    assert docker_config_credentials("docker.io", str(tmp_path / "absent.json")) is None


def test_endpoints_and_plain_http_only_on_loopback(monkeypatch):
    monkeypatch.delenv("MINIPOD_REGISTRY_LOOPBACK_ONLY", raising=False)
    assert registry_endpoint("docker.io") == "registry-1.docker.io"
    assert is_loopback("localhost") and is_loopback("127.0.0.7") and is_loopback("[::1]")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")
    assert RegistryClient("127.0.0.1:5000", "a/b").scheme == "http"
    assert RegistryClient("quay.io", "a/b").scheme == "https"
    assert RegistryClient("quay.io", "a/b", insecure=True).scheme == "http"
    monkeypatch.setenv("MINIPOD_REGISTRY_LOOPBACK_ONLY", "1")
    with pytest.raises(ImageError, match="not on loopback"):
        RegistryClient("docker.io", "library/busybox")


def _index(*platforms):
    return {"manifests": [{"digest": f"sha256:{str(i) * 64}", "platform": p} for i, p in enumerate(platforms)]}


def test_select_platform():
    index = _index({"os": "linux", "architecture": "arm", "variant": "v6"},
                   {"os": "linux", "architecture": "arm", "variant": "v7"},
                   {"os": "linux", "architecture": "amd64"},
                   {"os": "windows", "architecture": "amd64"},
                   {"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert select_platform(index, "arm", "v7")["digest"] == "sha256:" + "1" * 64
    assert select_platform(index, "amd64", None)["digest"] == "sha256:" + "2" * 64
    assert select_platform(index, "arm64", None)["digest"] == "sha256:" + "4" * 64
    with pytest.raises(ImageError, match=r"no image for platform linux/s390x .*linux/amd64"):
        select_platform(index, "s390x", None)


def test_manifest_media_types():
    assert manifest_media_type({"mediaType": DOCKER_LIST}, None) == DOCKER_LIST
    assert manifest_media_type({"manifests": []}, None) == OCI_INDEX
    assert manifest_media_type({}, OCI_MANIFEST + "; charset=utf-8") == OCI_MANIFEST
    with pytest.raises(ImageError, match="schema 1"):
        manifest_media_type({"schemaVersion": 1}, None)
    with pytest.raises(ImageError, match="unknown manifest media type"):
        manifest_media_type({"mediaType": "text/html"}, None)


def test_image_manifest_rejects_unknown_layer_type():
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2}
    good = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": DIGEST, "size": 9}
    assert check_image_manifest({"config": config, "layers": [good]}) == (config, [good])
    with pytest.raises(ImageError, match="layer 1 has an unknown media type 'application/x-weird'"):
        check_image_manifest({"config": config, "layers": [dict(good, mediaType="application/x-weird")]})
    with pytest.raises(ImageError, match="invalid digest"):
        check_image_manifest({"config": config, "layers": [dict(good, digest="sha256:../../etc")]})
