"""load_manifest: sources, good manifests, defaults, ConfigMaps and Secrets."""

import base64
import copy
import os

import pytest

from minipod.errors import SpecError
from minipod.spec import Manifest, load_manifest

HERE = os.path.dirname(__file__)


def manifest_path(name: str) -> str:
    return os.path.join(HERE, "manifests", name)


def minimal_pod(**spec) -> dict:
    body = {"containers": [{"name": "app", "image": "busybox"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": body}


MINIMAL_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: busybox
"""


# -- sources ----------------------------------------------------------------------


def test_path_text_bytes_dict_and_list_give_the_same_pod():
    path_pod = load_manifest(manifest_path("good.json")).pods[0]
    with open(manifest_path("good.json"), "rb") as f:
        raw = f.read()
    assert load_manifest(raw).pods[0] == path_pod
    assert load_manifest(raw.decode()).pods[0] == path_pod
    text_pod = load_manifest(MINIMAL_YAML).pods[0]
    assert load_manifest(minimal_pod()).pods[0] == text_pod
    assert load_manifest([minimal_pod()]).pods[0] == text_pod


def test_json_on_one_line_is_text_not_a_path():
    m = load_manifest('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},'
                      ' "spec": {"containers": [{"name": "a", "image": "b"}]}}')
    assert m.pods[0]["metadata"]["name"] == "j"


def test_missing_file_is_a_spec_error():
    with pytest.raises(SpecError, match="cannot read /nonexistent/pod.yaml: No such file or directory"):
        load_manifest("/nonexistent/pod.yaml")


def test_empty_text_and_comment_only_file_have_no_pod(tmp_path):
    with pytest.raises(SpecError) as err:
        load_manifest("", name_hint="<stdin>")
    assert err.value.problems == ["no Pod in <stdin>: it is empty"]
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n---\n")
    with pytest.raises(SpecError) as err:
        load_manifest(str(path))
    assert err.value.problems == [f"no Pod in {path}: it is empty"]


def test_file_with_only_a_config_map_has_no_pod():
    with pytest.raises(SpecError) as err:
        load_manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", name_hint="c.yaml")
    assert err.value.problems == ["no Pod in c.yaml"]


def test_source_names_the_file_in_the_message():
    with pytest.raises(SpecError) as err:
        load_manifest(manifest_path("bad-missing-image.yaml"))
    assert str(err.value).startswith(manifest_path("bad-missing-image.yaml") + ": ")


def test_users_objects_are_never_changed_or_shared():
    pod = minimal_pod(volumes=[{"name": "v"}])
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/v"}]
    before = copy.deepcopy(pod)
    m = load_manifest(pod)
    assert pod == before
    m.pods[0]["spec"]["containers"][0]["name"] = "changed"
    assert pod["spec"]["containers"][0]["name"] == "app"


def test_null_fields_count_as_absent():
    m = load_manifest(MINIMAL_YAML + "    env:\n    command:\n")
    container = m.pods[0]["spec"]["containers"][0]
    assert "env" not in container and "command" not in container


def test_v1_list_items_are_read():
    items = {"apiVersion": "v1", "kind": "List", "items": [minimal_pod(), dict(minimal_pod(), metadata={"name": "b"})]}
    m = load_manifest(items)
    assert [p["metadata"]["name"] for p in m.pods] == ["web", "b"]


def test_yaml_anchors_and_merge_keys_work():
    text = """\
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - &base
    name: app
    image: busybox
    command: [sleep, "9"]
  - <<: *base
    name: copy
"""
    containers = load_manifest(text).pods[0]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "copy"]
    assert containers[1]["command"] == ["sleep", "9"]


# -- the good multi-document manifest --------------------------------------------------


@pytest.fixture(scope="module")
def multi() -> Manifest:
    return load_manifest(manifest_path("good-multi.yaml"))


def test_multi_document_manifest(multi):
    assert [p["metadata"]["name"] for p in multi.pods] == ["web"]
    assert list(multi.config_maps) == [("default", "web-config")]
    assert list(multi.secrets) == [("default", "web-secret")]
    # Fields minipod does not honour yet say so, one warning each.
    assert all(": ignored: " in w for w in multi.warnings), multi.warnings


def test_pod_object_shape_and_metadata_defaults(multi):
    pod = multi.pods[0]
    assert list(pod) == ["apiVersion", "kind", "metadata", "spec"]
    assert pod["metadata"] == {
        "name": "web", "namespace": "default",
        "labels": {"app.kubernetes.io/name": "web"},
        "annotations": {"example.com/owner": "team web"},
    }
    assert "uid" not in pod["metadata"] and "creationTimestamp" not in pod["metadata"]


def test_config_map_and_secret_objects(multi):
    cm = multi.config_maps[("default", "web-config")]
    assert cm["data"] == {"index.html": "<h1>hello</h1>\n", "LOG_LEVEL": "debug"}
    assert cm["binaryData"] == {"logo.png": "iVBORw0KGgo="}
    secret = multi.secrets[("default", "web-secret")]
    assert "stringData" not in secret
    assert secret["type"] == "Opaque"
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        "token": b"s3cr3t", "password": b"hunter2"}


def test_string_data_wins_over_data():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"k": base64.b64encode(b"old").decode()}, "stringData": {"k": "new"}}
    m = load_manifest([secret, minimal_pod()])
    assert base64.b64decode(m.secrets[("default", "s")]["data"]["k"]) == b"new"


def test_binary_tag_becomes_base64_text():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbinaryData:\n  blob: !!binary aGVsbG8=\n---\n" + MINIMAL_YAML
    assert load_manifest(text).config_maps[("default", "c")]["binaryData"] == {"blob": "aGVsbG8="}


def test_pod_helpers_return_referenced_objects(multi):
    pod = multi.pods[0]
    assert list(multi.pod_config_maps(pod)) == [("default", "web-config")]
    assert list(multi.pod_secrets(pod)) == [("default", "web-secret")]


# -- defaults ------------------------------------------------------------------------------


def test_pod_spec_defaults():
    spec = load_manifest(MINIMAL_YAML).pods[0]["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["securityContext"] == {}
    assert spec["containers"][0] == {
        "name": "app", "image": "busybox", "imagePullPolicy": "Always",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "resources": {},
    }


def test_given_values_are_kept():
    pod = minimal_pod(restartPolicy="Never", terminationGracePeriodSeconds=0, dnsPolicy="Default")
    pod["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    spec = load_manifest(pod).pods[0]["spec"]
    assert (spec["restartPolicy"], spec["terminationGracePeriodSeconds"], spec["dnsPolicy"]) == ("Never", 0, "Default")
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("registry.local:5000/busybox", "Always"),
    ("registry.local:5000/busybox:1.36", "IfNotPresent"),
    ("busybox:1.36", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_default(image, policy):
    pod = minimal_pod()
    pod["spec"]["containers"][0]["image"] = image
    assert load_manifest(pod).pods[0]["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_container_part_defaults(multi):
    httpd = multi.pods[0]["spec"]["containers"][0]
    assert httpd["ports"][0]["protocol"] == "TCP"
    assert httpd["readinessProbe"] == {
        "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
    }
    assert httpd["livenessProbe"]["initialDelaySeconds"] == 2
    # A limit without a request makes the request; a given request stays.
    assert httpd["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    field_ref = httpd["env"][1]["valueFrom"]["fieldRef"]
    assert field_ref == {"fieldPath": "metadata.name", "apiVersion": "v1"}


def test_volume_defaults(multi):
    volumes = {v["name"]: v for v in multi.pods[0]["spec"]["volumes"]}
    assert volumes["html"]["configMap"]["defaultMode"] == 0o644
    assert volumes["creds"]["secret"]["defaultMode"] == 420
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert volumes["info"]["downwardAPI"]["defaultMode"] == 420


def test_host_path_type_default_and_host_network_host_port():
    pod = minimal_pod(hostNetwork=True, volumes=[{"name": "h", "hostPath": {"path": "/srv"}}])
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    spec = load_manifest(pod).pods[0]["spec"]
    assert spec["volumes"][0]["hostPath"] == {"path": "/srv", "type": ""}
    assert spec["containers"][0]["ports"][0] == {"containerPort": 8080, "protocol": "TCP", "hostPort": 8080}


def test_config_map_namespace_default_and_matching():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "tools"},
          "data": {"k": "v"}}
    pod = minimal_pod()
    pod["metadata"]["namespace"] = "tools"
    pod["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "c"}}]
    m = load_manifest([cm, pod])
    assert m.pods[0]["metadata"]["namespace"] == "tools"
    assert ("tools", "c") in m.config_maps


def test_json_that_yaml_refuses_still_loads():
    # YAML 1.1 has no surrogate-pair escapes; json.dumps writes them for emoji.
    text = ('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j", "annotations": {"note": "\\ud83d\\ude00"}},'
            ' "spec": {"containers": [{"name": "a", "image": "b"}]}}')
    assert load_manifest(text).pods[0]["metadata"]["annotations"] == {"note": "\U0001F600"}


JSON_POD = """{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "j"},
  "spec": {
    "containers": [
      {"name": "c", "image": "busybox", "bogus": 1}
    ]
  }
}"""


def test_json_errors_still_name_their_line():
    with pytest.raises(SpecError) as err:
        load_manifest(JSON_POD)
    assert "spec.containers[0].bogus: unknown field" in str(err.value)
    assert "(line 7)" in str(err.value)


def test_json_duplicate_keys_are_reported_with_their_line():
    text = JSON_POD.replace('"bogus": 1', '"image": "other"')
    with pytest.raises(SpecError) as err:
        load_manifest(text)
    assert "duplicate field" in str(err.value) and "line 7" in str(err.value)


def test_a_json_manifest_does_not_import_yaml():
    import subprocess
    import sys

    valid = JSON_POD.replace(', "bogus": 1', "")
    code = ("import sys; from minipod.spec import load_manifest; "
            f"load_manifest({valid!r}); print('yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.strip() == "False"
