"""imagePullSecrets: validated against the Secrets of the file, then read as
registry credentials."""

import base64
import json

import pytest

from minipod.errors import ImageError, SpecError
from minipod.images.pullsecrets import pod_pull_secrets, pull_credentials
from minipod.spec import load_manifest

REGISTRY = "127.0.0.1:5000"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _docker_config(user="alice", password="pw", host=REGISTRY) -> str:
    return _b64(json.dumps({"auths": {host: {"auth": _b64(f"{user}:{password}".encode())}}}).encode())


def _manifest(secret_type="kubernetes.io/dockerconfigjson", data=None, pull_secret="regcred",
              secret_name="regcred") -> str:
    data = {".dockerconfigjson": _docker_config()} if data is None else data
    return "\n---\n".join([
        json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name},
                    "type": secret_type, "data": data}),
        json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                    "spec": {"imagePullSecrets": [{"name": pull_secret}],
                             "containers": [{"name": "app", "image": f"{REGISTRY}/app:1"}]}}),
    ])


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_manifest(text)
    return err.value.problems


def test_a_valid_pull_secret_loads_without_warning_and_gives_credentials():
    manifest = load_manifest(_manifest())
    assert manifest.warnings == []
    secrets = pod_pull_secrets(manifest.pods[0], manifest.secrets)
    assert [s["metadata"]["name"] for s in secrets] == ["regcred"]
    assert pull_credentials(secrets, REGISTRY) == ("alice", "pw")
    assert pull_credentials(secrets, "other.example:5000") is None


def test_missing_pull_secret_names_the_field():
    problems = _problems(_manifest(pull_secret="nope"))
    assert len(problems) == 1
    assert "spec.imagePullSecrets[0].name" in problems[0] and 'Secret "nope" not found' in problems[0]


def test_pull_secret_of_the_wrong_type_is_refused():
    problems = _problems(_manifest(secret_type="Opaque", data={"x": _b64(b"y")}))
    assert len(problems) == 1
    assert "spec.imagePullSecrets[0].name" in problems[0]
    assert "must be of type kubernetes.io/dockerconfigjson" in problems[0]


def test_pull_secret_whose_key_is_not_a_docker_config_is_refused():
    problems = _problems(_manifest(data={".dockerconfigjson": _b64(b"not json")}))
    assert len(problems) == 1
    assert "spec.imagePullSecrets[0].name" in problems[0] and "docker config.json" in problems[0]


def test_first_secret_with_an_entry_for_the_registry_wins():
    def secret(name, host, user):
        return {"metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": _docker_config(user=user, host=host)}}

    secrets = [secret("a", "elsewhere:1", "x"), secret("b", f"http://{REGISTRY}", "bob"),
               secret("c", REGISTRY, "carol")]
    assert pull_credentials(secrets, REGISTRY) == ("bob", "pw")


def test_docker_hub_entries_match_docker_io():
    config = _b64(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "username": "hub", "password": "pw2"}}}).encode())
    secret = {"metadata": {"name": "hub"}, "type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": config}}
    assert pull_credentials([secret], "docker.io") == ("hub", "pw2")


def test_bad_auth_entry_names_the_secret():
    config = _b64(json.dumps({"auths": {REGISTRY: {"auth": _b64(b"\xff\xfe")}}}).encode())
    secret = {"metadata": {"name": "broken"}, "type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": config}}
    with pytest.raises(ImageError, match='Secret "broken"'):
        pull_credentials([secret], REGISTRY)
