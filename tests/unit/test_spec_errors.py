"""Broken manifests: every problem is reported, each with its field path."""

import os

import pytest

from minipod.errors import SpecError
from minipod.spec import load_manifest

HERE = os.path.dirname(__file__)


def problems_of(source, **kwargs) -> list[str]:
    if isinstance(source, str) and source.endswith((".yaml", ".json")):
        source = os.path.join(HERE, "manifests", source)
    with pytest.raises(SpecError) as err:
        load_manifest(source, **kwargs)
    return err.value.problems


def test_yaml_syntax_error_gives_line_and_column():
    assert problems_of("bad-syntax.yaml") == ["line 5, column 14: mapping values are not allowed in this context"]


def test_yaml_error_names_the_block_that_is_open():
    text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n   image: b\n"
    [problem] = problems_of(text)
    assert problem.startswith("line 6, column 4: ")
    assert problem.endswith("(while parsing a block mapping that starts on line 4)")


def test_unknown_fields_with_suggestions():
    assert problems_of("bad-unknown-field.yaml") == [
        'spec.containers[0].ports[0].protcol: unknown field (did you mean "protocol"?) (line 11)',
        'spec.containers[0].imagePullPolcy: unknown field (did you mean "imagePullPolicy"?) (line 12)',
    ]


def test_unknown_field_far_from_any_name_has_no_suggestion():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "b"}], "zzz": 1}}
    assert problems_of(pod) == ["spec.zzz: unknown field"]


def test_wrong_types():
    assert problems_of("bad-wrong-type.yaml") == [
        'spec.containers[0].command: must be a list, got string \'sh -c "sleep 1"\' '
        '(a YAML list is written [a, b] or with one "- item" per line) (line 9)',
        "spec.containers[0].env[0].value: must be a string, got integer 8080 (put it in quotes) (line 12)",
        'spec.containers[0].ports[0].containerPort: must be an integer, got string "80" (line 14)',
    ]


def test_duplicate_container_names_also_across_init_containers():
    assert problems_of("bad-duplicate-containers.yaml") == [
        'spec.containers[1].name: duplicate container name "app" (also spec.containers[0]) (line 12)',
        'spec.containers[2].name: duplicate container name "prepare" (also spec.initContainers[0]) (line 14)',
    ]


def test_volume_mount_naming_no_volume():
    assert problems_of("bad-volume-mount.yaml") == [
        'spec.containers[0].volumeMounts[0].name: no volume named "dat" in spec.volumes (did you mean "data"?) (line 13)',
    ]


def test_invalid_pod_name():
    [problem] = problems_of("bad-pod-name.yaml")
    assert problem.startswith('metadata.name: "My_Web" is not a valid DNS-1123 subdomain')
    assert problem.endswith("(line 4)")


def test_container_port_out_of_range():
    assert problems_of("bad-container-port.yaml") == [
        "spec.containers[1].ports[0].containerPort: must be between 1 and 65535, got 70000 (line 14)",
    ]


def test_missing_image():
    assert problems_of("bad-missing-image.yaml") == ["spec.containers[0].image: required (line 7)"]


def test_not_a_pod():
    assert problems_of("bad-deployment.yaml") == [
        'kind: "Deployment" is not supported: minipod runs Pods '
        "(ConfigMap and Secret documents are accepted as inputs) (line 2)",
    ]


def test_duplicate_host_port():
    # The UDP port on 8080 does not clash with the TCP ones.
    assert problems_of("bad-duplicate-hostport.yaml") == [
        "spec.containers[1].ports[0].hostPort: host port 0.0.0.0:8080/TCP is already used by "
        "spec.containers[0].ports[0] (line 16)",
    ]


def test_unknown_config_map_and_key():
    assert problems_of("bad-configmap-ref.yaml") == [
        'document 2 (Pod "web"): spec.volumes[0].configMap.name: ConfigMap "setings" not found: minipod takes '
        'ConfigMaps from the same file, namespace "default" (or set optional: true) (did you mean "settings"?) (line 16)',
        'document 2 (Pod "web"): spec.containers[0].env[0].valueFrom.configMapKeyRef.key: ConfigMap "settings" '
        'has no key "speed" (or set optional: true) (line 25)',
    ]


def test_several_errors_in_several_documents_reported_together():
    problems = problems_of("bad-many.yaml")
    assert [p.split(":")[0] for p in problems] == [
        "spec.restartPolicy",
        "spec.containers[0].name",
        "spec.containers[0].image",
        "spec.containers[0].ports[0].containerPort",
        "spec.containers[0].livenessProbe",
        "spec.containers[0].livenessProbe.periodSeconds",
        'document 2 (Pod "second")',
    ]
    assert problems[-1] == 'document 2 (Pod "second"): spec.containers: required: at least one container (line 20)'
    assert problems[4] == "spec.containers[0].livenessProbe: must have one of exec, httpGet, tcpSocket, grpc (line 12)"


def test_dict_sources_have_no_line_numbers():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    assert problems_of(pod) == ["spec.containers: required"]


def test_later_documents_are_named_even_without_a_kind():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "b"}]}}
    assert problems_of([pod, {"apiVersion": "v1"}, "text"]) == [
        "document 2: kind: required: minipod runs Pods (ConfigMap and Secret documents are accepted as inputs)",
        "document 3: must be a Kubernetes object (a mapping with apiVersion and kind), got string \"text\"",
    ]


def test_wrong_api_version_for_a_pod():
    text = "apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: b}]\n"
    assert problems_of(text) == ['apiVersion: must be "v1" for kind Pod, got string "apps/v1" (line 1)']


def test_duplicate_yaml_key_is_an_error():
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: b\n    image: c\n"
    assert problems_of(text) == ["spec.containers[0].image: duplicate field, given again on line 8 (line 7)"]


def test_duplicate_pod_names_in_one_file():
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n---\n"
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec: {containers: [{name: a, image: b}]}\n---\n"
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: other}\nspec: {containers: [{name: a, image: b}]}\n")
    assert problems_of(text) == ['document 2 (Pod "p"): metadata.name: Pod "default/p" is already defined by document 1 (Pod "p") (line 8)']


def test_recursive_alias_is_refused():
    [problem] = problems_of("a: &x [*x]\n")
    assert "alias refers to a node that contains it" in problem


def test_unknown_yaml_tag_is_a_spec_error():
    [problem] = problems_of("apiVersion: v1\nkind: !thing Pod\n")
    assert problem.startswith("line 2, column 7: could not determine a constructor for the tag '!thing'")


def test_invalid_utf8():
    assert problems_of(b"kind: Pod\n\xff\n") == ["not UTF-8 text: invalid byte at offset 10"]


def test_errors_inside_a_v1_list_name_the_item():
    text = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: a, image: b}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
  spec: {}
"""
    assert problems_of(text) == ["document 2 (List): items[1].spec.containers: required (line 15)"]
