"""Fields that are valid Kubernetes but mean nothing on one host: one warning each."""

import copy
import os

from minipod.spec import load_manifest

HERE = os.path.dirname(__file__)
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
       "spec": {"containers": [{"name": "app", "image": "busybox"}]}}


def warnings_for(spec=None, container=None) -> list[str]:
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0].update(container or {})
    pod["spec"].update(spec or {})
    return load_manifest(pod).warnings


def test_each_ignored_field_warns_once_with_its_reason():
    m = load_manifest(os.path.join(HERE, "manifests", "warnings.yaml"))
    assert len(m.pods) == 2
    assert m.warnings == [
        "spec.nodeSelector: ignored: minipod runs every pod on this host, there is no scheduler",
        "spec.tolerations: ignored: a single host has no taints to tolerate",
        "spec.affinity: ignored: minipod runs every pod on this host, there is no scheduler",
        "spec.priorityClassName: ignored: minipod does not schedule or preempt pods by priority",
        "spec.serviceAccountName: ignored: minipod has no API server, so there is no service account token to mount",
        'document 2 (Pod "other"): spec.nodeSelector: ignored: minipod runs every pod on this host, '
        "there is no scheduler",
    ]


def test_ignored_fields_are_kept_in_the_spec():
    m = load_manifest(os.path.join(HERE, "manifests", "warnings.yaml"))
    assert m.pods[0]["spec"]["nodeSelector"] == {"disktype": "ssd"}


def test_values_that_ask_for_nothing_do_not_warn():
    assert warnings_for({"schedulerName": "default-scheduler", "priority": 0, "serviceAccountName": "default",
                         "automountServiceAccountToken": False, "preemptionPolicy": "PreemptLowerPriority",
                         "nodeSelector": {}, "tolerations": []}) == []


def test_ignored_fields_are_still_validated():
    from minipod.errors import SpecError
    import pytest

    with pytest.raises(SpecError) as err:
        load_manifest(dict(POD, spec=dict(POD["spec"], tolerations=[{"operator": "Maybe"}])))
    assert err.value.problems[0].startswith('spec.tolerations[0].operator: unsupported value "Maybe"')


def test_more_ignored_fields():
    found = warnings_for({
        "nodeName": "node-1", "runtimeClassName": "gvisor", "topologySpreadConstraints": [{"maxSkew": 1}],
        "readinessGates": [{"conditionType": "example.com/ready"}],
        "schedulingGates": [{"name": "wait"}], "overhead": {"cpu": "10m"}, "priority": 100,
    })
    assert [w.split(":")[0] for w in found] == [
        "spec.nodeName", "spec.runtimeClassName", "spec.topologySpreadConstraints", "spec.readinessGates",
        "spec.schedulingGates", "spec.overhead", "spec.priority",
    ]
    assert all(": ignored: " in w for w in found)


def test_container_level_warnings():
    found = warnings_for(container={
        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
        "resources": {"limits": {"ephemeral-storage": "1Gi", "example.com/gpu": 1}},
        "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
        "securityContext": {"seLinuxOptions": {"level": "s0"}},
    })
    assert found == [
        "spec.containers[0].resizePolicy: ignored: minipod does not resize containers in place",
        "spec.containers[0].resources.limits[ephemeral-storage]: ignored: minipod does not limit a container's disk use",
        "spec.containers[0].resources.limits[example.com/gpu]: ignored: no device plugin provides extended "
        "resources on this host",
        "spec.containers[0].securityContext.seLinuxOptions: ignored: minipod does not apply SELinux labels",
        'spec.containers[0].env[1].name: "A" is also set by env[0]; the last one wins',
    ]


def test_status_from_kubectl_get_is_ignored_and_dropped():
    pod = dict(copy.deepcopy(POD), status={"phase": "Running"})
    m = load_manifest(pod)
    assert m.warnings == ["status: ignored: a pod's status is reported by minipod"]
    assert "status" not in m.pods[0]


def test_no_warnings_for_a_plain_pod():
    assert warnings_for() == []


def test_cpu_and_memory_resources_are_enforced_so_not_warned():
    found = warnings_for(container={"resources": {"limits": {"cpu": "500m", "memory": "64Mi"},
                                                  "requests": {"cpu": "250m", "memory": "32Mi"}}})
    assert found == []


def test_huge_pages_are_still_ignored_with_a_warning():
    found = warnings_for(container={"resources": {"limits": {"hugepages-2Mi": "4Mi", "memory": "64Mi"}}})
    assert found == ["spec.containers[0].resources.limits[hugepages-2Mi]: ignored: minipod does not reserve huge pages"]
