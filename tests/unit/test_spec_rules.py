"""Validation rules, one at a time, on manifests given as dicts."""

import copy

import pytest

from minipod.errors import SpecError
from minipod.spec import load_manifest

BASE = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "app", "image": "busybox"}]},
}


def make_pod(spec=None, container=None, metadata=None) -> dict:
    pod = copy.deepcopy(BASE)
    pod["spec"]["containers"][0].update(container or {})
    pod["spec"].update(spec or {})
    pod["metadata"].update(metadata or {})
    return pod


def errors(*documents) -> list[str]:
    try:
        load_manifest(list(documents))
    except SpecError as err:
        return err.problems
    return []


def config_map(name="cfg", data=None, namespace=None) -> dict:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"key": "value"}}


def secret(name="sec", **fields) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **fields}


def test_base_pod_is_valid():
    assert errors(make_pod()) == []


# -- metadata -------------------------------------------------------------------------


@pytest.mark.parametrize("metadata, problem", [
    ({"name": None}, "metadata.name: required"),
    ({"name": "x" * 254}, "metadata.name: must be no more than 253 characters (a DNS-1123 subdomain)"),
    ({"namespace": "Prod"}, 'metadata.namespace: "Prod" is not a valid DNS-1123 label'),
    ({"labels": {"app": "has space"}}, 'metadata.labels[app]: "has space" is not a valid label value'),
    ({"labels": {"app": 3}}, "metadata.labels[app]: must be a string, got integer 3 (put it in quotes)"),
    ({"labels": {"-bad": "x"}}, 'metadata.labels: "-bad" is not a valid key'),
    ({"annotations": {"a/b/c": "x"}}, 'metadata.annotations: "a/b/c" is not a valid key'),
    ({"annotations": {"Example.com/x": "x"}}, 'metadata.annotations: "Example.com/x" is not a valid key: prefix part'),
])
def test_metadata_rules(metadata, problem):
    pod = make_pod(metadata=metadata)
    if metadata.get("name", "") is None:
        del pod["metadata"]["name"]
    [found] = errors(pod)
    assert found.startswith(problem)


def test_label_keys_with_prefix_and_empty_values_are_fine():
    assert errors(make_pod(metadata={"labels": {"app.kubernetes.io/name": "", "tier": "a.b-c_d"}})) == []


def test_pod_name_that_is_not_a_hostname_needs_spec_hostname():
    [problem] = errors(make_pod(metadata={"name": "web.v2"}))
    assert problem.startswith('metadata.name: "web.v2" would be the pod\'s hostname')
    assert "set spec.hostname" in problem
    assert errors(make_pod(metadata={"name": "web.v2"}, spec={"hostname": "web"})) == []
    assert errors(make_pod(metadata={"name": "a" * 70}, spec={"hostNetwork": True})) == []


def test_server_set_metadata_is_ignored_with_a_warning_and_dropped():
    m = load_manifest(make_pod(metadata={"uid": "1234", "resourceVersion": "9"}))
    assert "uid" not in m.pods[0]["metadata"]
    assert m.warnings == [
        "metadata.uid: ignored: set by the API server, not by a manifest",
        "metadata.resourceVersion: ignored: set by the API server, not by a manifest",
    ]


# -- pod spec ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec, problem", [
    ({"containers": []}, "spec.containers: required: at least one container"),
    ({"containers": {"name": "app"}}, "spec.containers: must be a list, got an object"),
    ({"restartPolicy": "never"}, 'spec.restartPolicy: unsupported value "never": must be one of "Always", '
                                 '"OnFailure", "Never" (did you mean "Never"?)'),
    ({"terminationGracePeriodSeconds": -1}, "spec.terminationGracePeriodSeconds: must be greater than or equal to 0"),
    ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds: must be between 1 and"),
    ({"dnsPolicy": "Cluster"}, 'spec.dnsPolicy: unsupported value "Cluster"'),
    ({"dnsPolicy": "None"}, "spec.dnsConfig: required when dnsPolicy is None"),
    ({"dnsPolicy": "None", "dnsConfig": {"searches": ["a"]}},
     "spec.dnsConfig.nameservers: at least one nameserver is required when dnsPolicy is None"),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"]}},
     "spec.dnsConfig.nameservers: must have at most 3 items, got 4"),
    ({"dnsConfig": {"nameservers": ["one"]}}, 'spec.dnsConfig.nameservers[0]: "one" is not a valid IP address'),
    ({"hostname": "web.local"}, 'spec.hostname: "web.local" is not a valid DNS-1123 label'),
    ({"subdomain": "Sub"}, 'spec.subdomain: "Sub" is not a valid DNS-1123 label'),
    ({"hostNetwork": "yes"}, 'spec.hostNetwork: must be a boolean (true or false), got string "yes"'),
    ({"hostAliases": [{"hostnames": ["a"]}]}, "spec.hostAliases[0].ip: required"),
    ({"os": {"name": "windows"}}, 'spec.os.name: unsupported value "windows": minipod runs Linux containers'),
    ({"hostUsers": False}, "spec.hostUsers: false is not supported by minipod"),
    ({"shareProcessNamespace": True, "hostPID": True}, "spec.shareProcessNamespace: cannot be true together with hostPID"),
    ({"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}, "spec.ephemeralContainers: cannot be set"),
])
def test_pod_spec_rules(spec, problem):
    found = errors(make_pod(spec=spec))
    assert len(found) == 1, found
    assert found[0].startswith(problem)


def test_ephemeral_container_names_count_for_uniqueness():
    found = errors(make_pod(spec={"ephemeralContainers": [{"name": "app", "image": "busybox"}]}))
    assert 'spec.ephemeralContainers[0].name: duplicate container name "app" (also spec.containers[0])' in found


# -- containers -------------------------------------------------------------------------------


@pytest.mark.parametrize("container, problem", [
    ({"name": "my_app"}, 'spec.containers[0].name: "my_app" is not a valid DNS-1123 label'),
    ({"image": ""}, "spec.containers[0].image: must not be empty"),
    ({"image": 3.1}, "spec.containers[0].image: must be a string, got number 3.1 (put it in quotes)"),
    ({"imagePullPolicy": "Sometimes"}, 'spec.containers[0].imagePullPolicy: unsupported value "Sometimes"'),
    ({"workingDir": "src"}, 'spec.containers[0].workingDir: "src" must be an absolute path'),
    ({"restartPolicy": "Always"}, "spec.containers[0].restartPolicy: may only be set for init containers"),
    ({"volumeDevices": [{"name": "d", "devicePath": "/dev/x"}]}, "spec.containers[0].volumeDevices: not supported by minipod"),
    ({"tty": "true"}, 'spec.containers[0].tty: must be a boolean (true or false), got string "true"'),
    ({"terminationMessagePolicy": "Logs"}, 'spec.containers[0].terminationMessagePolicy: unsupported value "Logs"'),
])
def test_container_rules(container, problem):
    found = errors(make_pod(container=container))
    assert len(found) == 1, found
    assert found[0].startswith(problem)


def test_init_containers_rules():
    pod = make_pod(spec={"initContainers": [
        {"name": "init", "image": "busybox", "restartPolicy": "Never"},
        {"name": "sidecar", "image": "busybox", "restartPolicy": "Always",
         "readinessProbe": {"exec": {"command": ["true"]}}},
        {"name": "once", "image": "busybox", "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}},
    ]})
    assert errors(pod) == [
        'spec.initContainers[0].restartPolicy: must be "Always", got "Never"',
        "spec.initContainers[2].lifecycle: may only be set for an init container with restartPolicy: Always (a sidecar)",
    ]


# -- ports -----------------------------------------------------------------------------------


@pytest.mark.parametrize("port, problem", [
    ({"containerPort": 0}, "containerPort: must be between 1 and 65535, got 0"),
    ({"containerPort": True}, "containerPort: must be an integer, got boolean true"),
    ({"containerPort": 80, "hostPort": 65536}, "hostPort: must be between 0 and 65535, got 65536"),
    ({"containerPort": 80, "protocol": "tcp"}, 'protocol: unsupported value "tcp": must be one of "TCP", "UDP", '
                                              '"SCTP" (did you mean "TCP"?)'),
    ({"containerPort": 80, "name": "a-very-long-port-name"}, 'name: "a-very-long-port-name" is not a valid port '
                                                             "name: must be no more than 15 characters"),
    ({"containerPort": 80, "name": "8080"}, 'name: "8080" is not a valid port name: must contain at least one letter'),
    ({"containerPort": 80, "name": "a--b"}, 'name: "a--b" is not a valid port name'),
    ({"containerPort": 80, "hostIP": "localhost"}, 'hostIP: "localhost" is not a valid IP address'),
    ({"hostPort": 80}, "containerPort: required"),
])
def test_port_rules(port, problem):
    [found] = errors(make_pod(container={"ports": [port]}))
    assert found.startswith("spec.containers[0].ports[0]." + problem)


def test_port_names_unique_within_a_container():
    ports = [{"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}]
    assert errors(make_pod(container={"ports": ports})) == [
        'spec.containers[0].ports[1].name: duplicate port name "http" (also ports[0])']


def test_host_ports_on_distinct_addresses_do_not_clash_but_wildcards_do():
    two = {"name": "two", "image": "busybox"}
    ok = make_pod(container={"ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}]})
    ok["spec"]["containers"].append(dict(two, ports=[{"containerPort": 81, "hostPort": 8080, "hostIP": "127.0.0.2"}]))
    assert errors(ok) == []
    bad = copy.deepcopy(ok)
    bad["spec"]["containers"][1]["ports"][0]["hostIP"] = "0.0.0.0"
    assert errors(bad) == ["spec.containers[1].ports[0].hostPort: host port 0.0.0.0:8080/TCP is already used by "
                           "spec.containers[0].ports[0]"]


def test_init_container_host_port_does_not_clash_with_app_containers():
    pod = make_pod(container={"ports": [{"containerPort": 80, "hostPort": 8080}]},
                   spec={"initContainers": [{"name": "init", "image": "busybox",
                                             "ports": [{"containerPort": 80, "hostPort": 8080}]}]})
    assert errors(pod) == []
    pod["spec"]["initContainers"][0]["restartPolicy"] = "Always"  # a sidecar runs alongside
    assert len(errors(pod)) == 1


def test_host_network_needs_host_port_equal_to_container_port():
    pod = make_pod(spec={"hostNetwork": True}, container={"ports": [{"containerPort": 80, "hostPort": 8080}]})
    assert errors(pod) == ["spec.containers[0].ports[0].hostPort: must equal containerPort (80) when hostNetwork is true"]


# -- env -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env, problem", [
    ({"name": "A=B"}, "name: 'A=B' is not a valid environment variable name"),
    ({"name": ""}, "name: must not be empty"),
    ({"value": "x"}, "name: required"),
    ({"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
     "valueFrom: must not be set together with a non-empty value"),
    ({"name": "A", "valueFrom": {}}, "valueFrom: must have one of fieldRef, resourceFieldRef"),
    ({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"},
                                 "resourceFieldRef": {"resource": "limits.cpu"}}},
     "valueFrom: must have only one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef, fileKeyRef, "
     "got fieldRef and resourceFieldRef"),
    ({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.nam"}}},
     'valueFrom.fieldRef.fieldPath: unsupported fieldPath "metadata.nam"'),
    ({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
     'valueFrom.fieldRef.fieldPath: unsupported fieldPath "metadata.labels"'),
    ({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v2"}}},
     'valueFrom.fieldRef.apiVersion: must be "v1", got "v2"'),
    ({"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
     'valueFrom.resourceFieldRef.resource: unsupported resource "limits.gpu"'),
    ({"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1Mi"}}},
     "valueFrom.resourceFieldRef.divisor: must be 1m or 1 for limits.cpu, got 1Mi"),
    ({"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "nope"}}},
     'valueFrom.resourceFieldRef.containerName: no container named "nope" in this pod'),
    ({"name": "A", "valueFrom": {"secretKeyRef": {"name": "sec", "optional": True}}},
     "valueFrom.secretKeyRef.key: required"),
])
def test_env_rules(env, problem):
    [found] = errors(make_pod(container={"env": [env]}))
    assert found.startswith("spec.containers[0].env[0]." + problem), found


@pytest.mark.parametrize("path", [
    "metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['app']",
    "metadata.annotations['example.com/x']", "spec.nodeName", "spec.serviceAccountName", "status.podIP",
    "status.podIPs", "status.hostIP", "status.hostIPs",
])
def test_env_field_paths_accepted(path):
    assert errors(make_pod(container={"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": path}}}]})) == []


def test_relaxed_env_names_and_empty_value_with_value_from():
    env = [{"name": "my.var-1 x", "value": ""}, {"name": "B", "value": "", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}]
    assert errors(make_pod(container={"env": env})) == []


def test_env_from_rules():
    env_from = [{"prefix": "P_"}, {"configMapRef": {"name": "cfg"}, "secretRef": {"name": "sec"}}]
    assert errors(make_pod(container={"envFrom": env_from}), config_map(), secret()) == [
        "spec.containers[0].envFrom[0]: must have one of configMapRef, secretRef",
        "spec.containers[0].envFrom[1]: must have only one of configMapRef, secretRef, got configMapRef and secretRef",
    ]


# -- references to ConfigMaps and Secrets -------------------------------------------------------------


def test_references_resolve_in_the_same_namespace():
    env = [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "key"}}}]
    assert errors(make_pod(container={"env": env}), config_map()) == []
    [problem] = errors(make_pod(container={"env": env}), config_map(namespace="other"))
    assert problem.startswith('spec.containers[0].env[0].valueFrom.configMapKeyRef.name: ConfigMap "cfg" not found')


def test_optional_references_may_be_missing():
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": True}}},
           {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "missing", "optional": True}}}]
    volumes = [{"name": "s", "secret": {"secretName": "none", "optional": True}}]
    assert errors(make_pod(container={"env": env}, spec={"volumes": volumes}), config_map()) == []


def test_secret_key_refs_see_string_data():
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}}]
    assert errors(make_pod(container={"env": env}), secret(stringData={"password": "x"})) == []
    [problem] = errors(make_pod(container={"env": env}), secret(stringData={"user": "x"}))
    assert problem.startswith('spec.containers[0].env[0].valueFrom.secretKeyRef.key: Secret "sec" has no key "password"')


def test_volume_and_projected_references():
    volumes = [
        {"name": "c", "configMap": {"name": "cfg", "items": [{"key": "nokey", "path": "f"}]}},
        {"name": "p", "projected": {"sources": [
            {"secret": {"name": "absent"}},
            {"configMap": {"name": "cfg", "items": [{"key": "key", "path": "k"}]}},
            {"downwardAPI": {"items": [{"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}]}},
        ]}},
    ]
    found = errors(make_pod(spec={"volumes": volumes}), config_map())
    assert [p.split(":")[0] for p in found] == [
        "spec.volumes[0].configMap.items[0].key",
        "spec.volumes[1].projected.sources[0].secret.name",
        "spec.volumes[1].projected.sources[2].downwardAPI.items[0].resourceFieldRef.containerName",
    ]


# -- volumes and mounts ------------------------------------------------------------------------------


@pytest.mark.parametrize("volume, problem", [
    ({"name": "Data"}, 'name: "Data" is not a valid DNS-1123 label'),
    ({"name": "v", "emptyDir": {"medium": "Disk"}}, 'emptyDir.medium: unsupported value "Disk"'),
    ({"name": "v", "emptyDir": {"sizeLimit": "lots"}}, 'emptyDir.sizeLimit: "lots" is not a quantity'),
    ({"name": "v", "emptyDir": {"sizeLimit": "-1Gi"}}, "emptyDir.sizeLimit: must be greater than or equal to 0"),
    ({"name": "v", "hostPath": {"path": "srv"}}, 'hostPath.path: "srv" must be an absolute path'),
    ({"name": "v", "hostPath": {"path": "/srv", "type": "Dir"}}, 'hostPath.type: unsupported value "Dir"'),
    ({"name": "v", "hostPath": {"path": "/srv"}, "emptyDir": {}},
     "must have only one volume source, got emptyDir and hostPath"),
    ({"name": "v", "persistentVolumeClaim": {"claimName": "c"}}, "persistentVolumeClaim: not supported by minipod"),
    ({"name": "v", "nfs": {"server": "s", "path": "/"}}, "nfs: not supported by minipod"),
    ({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o1000}},
     "configMap.defaultMode: must be a file mode between 0 and 0777 (octal), got 0o1000"),
    ({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "key", "path": "../x"}]}},
     "configMap.items[0].path: \"../x\" must not contain '..'"),
    ({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "key", "path": "/x"}]}},
     'configMap.items[0].path: "/x" must be a relative path'),
    ({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "key", "path": "..data"}]}},
     "configMap.items[0].path: \"..data\" must not start with '..'"),
    ({"name": "v", "secret": {"secretName": "sec", "name": "sec"}}, 'secret.name: unknown field (did you mean "secretName"?)'),
    ({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
     "projected.sources[0].serviceAccountToken: not supported by minipod"),
    ({"name": "v", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "status.podIP"}}]}},
     'downwardAPI.items[0].fieldRef.fieldPath: unsupported fieldPath "status.podIP"'),
])
def test_volume_rules(volume, problem):
    found = errors(make_pod(spec={"volumes": [volume]}), config_map(), secret())
    assert len(found) == 1, found
    assert found[0].startswith("spec.volumes[0]." + problem if not problem.startswith("must") else
                               "spec.volumes[0]: " + problem), found


def test_duplicate_volume_names():
    assert errors(make_pod(spec={"volumes": [{"name": "v"}, {"name": "v"}]})) == [
        'spec.volumes[1].name: duplicate volume name "v" (also volumes[0])']


@pytest.mark.parametrize("mount, problem", [
    ({"name": "v", "mountPath": "data"}, 'mountPath: "data" must be an absolute path'),
    ({"name": "v", "mountPath": "/a:b"}, "mountPath: \"/a:b\" must not contain ':'"),
    ({"name": "v"}, "mountPath: required"),
    ({"name": "v", "mountPath": "/d", "subPath": "../etc"}, "subPath: \"../etc\" must not contain '..'"),
    ({"name": "v", "mountPath": "/d", "subPath": "/etc"}, 'subPath: "/etc" must be a relative path'),
    ({"name": "v", "mountPath": "/d", "subPath": "a", "subPathExpr": "$(POD)"},
     "subPathExpr: must not be set together with subPath"),
    ({"name": "v", "mountPath": "/d", "readOnly": "yes"}, "readOnly: must be a boolean"),
    ({"name": "v", "mountPath": "/d", "mountPropagation": "Shared"}, 'mountPropagation: unsupported value "Shared"'),
    ({"name": "v", "mountPath": "/d", "mountPropagation": "Bidirectional"},
     "mountPropagation: Bidirectional needs a privileged container"),
    ({"name": "v", "mountPath": "/d", "recursiveReadOnly": "Enabled"}, "recursiveReadOnly: needs readOnly: true"),
])
def test_volume_mount_rules(mount, problem):
    found = errors(make_pod(spec={"volumes": [{"name": "v"}]}, container={"volumeMounts": [mount]}))
    assert len(found) == 1, found
    assert found[0].startswith("spec.containers[0].volumeMounts[0]." + problem), found


def test_mount_paths_unique_per_container():
    mounts = [{"name": "v", "mountPath": "/data"}, {"name": "v", "mountPath": "/data/"}]
    assert errors(make_pod(spec={"volumes": [{"name": "v"}]}, container={"volumeMounts": mounts})) == [
        'spec.containers[0].volumeMounts[1].mountPath: "/data/" is already used by volumeMounts[0]']


# -- probes and lifecycle --------------------------------------------------------------------------------


@pytest.mark.parametrize("probe, problem", [
    ({}, "livenessProbe: must have one of exec, httpGet, tcpSocket, grpc"),
    ({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
     "livenessProbe: must have only one of exec, httpGet, tcpSocket, grpc, got exec and tcpSocket"),
    ({"exec": {"command": []}}, "livenessProbe.exec.command: required: the command to run"),
    ({"httpGet": {"port": 0}}, "livenessProbe.httpGet.port: must be between 1 and 65535, got 0"),
    ({"httpGet": {"port": "web"}}, 'livenessProbe.httpGet.port: "web" does not name a port of this container'),
    ({"httpGet": {"port": 80, "scheme": "FTP"}}, 'livenessProbe.httpGet.scheme: unsupported value "FTP"'),
    ({"tcpSocket": {"port": "Web"}}, 'livenessProbe.tcpSocket.port: "Web" is not a valid port name'),
    ({"grpc": {"port": "grpc"}}, 'livenessProbe.grpc.port: must be an integer, got string "grpc"'),
    ({"exec": {"command": ["true"]}, "failureThreshold": 0}, "livenessProbe.failureThreshold: must be greater than or equal to 1"),
    ({"exec": {"command": ["true"]}, "timeoutSeconds": 0}, "livenessProbe.timeoutSeconds: must be greater than or equal to 1"),
    ({"exec": {"command": ["true"]}, "initialDelaySeconds": -1}, "livenessProbe.initialDelaySeconds: must be greater"),
    ({"exec": {"command": ["true"]}, "successThreshold": 2}, "livenessProbe.successThreshold: must be 1 for a livenessProbe"),
])
def test_probe_rules(probe, problem):
    found = errors(make_pod(container={"livenessProbe": probe}))
    assert len(found) == 1, found
    assert found[0].startswith("spec.containers[0]." + problem), found


def test_probe_port_by_name_of_a_container_port():
    container = {"ports": [{"containerPort": 8080, "name": "web"}],
                 "readinessProbe": {"httpGet": {"port": "web"}, "successThreshold": 3},
                 "startupProbe": {"tcpSocket": {"port": "web"}}}
    assert errors(make_pod(container=container)) == []


def test_lifecycle_rules():
    container = {"lifecycle": {
        "postStart": {"exec": {"command": ["true"]}, "sleep": {"seconds": 1}},
        "preStop": {"sleep": {"seconds": 60}},
    }}
    assert errors(make_pod(container=container)) == [
        "spec.containers[0].lifecycle.postStart: must have only one of exec, httpGet, tcpSocket, sleep, got exec and sleep",
        "spec.containers[0].lifecycle.preStop.sleep.seconds: must be at most terminationGracePeriodSeconds (30), got 60",
    ]
    assert errors(make_pod(container={"lifecycle": {"stopSignal": "SIGTREM"}})) == [
        'spec.containers[0].lifecycle.stopSignal: "SIGTREM" is not a Linux signal name (like SIGTERM) '
        '(did you mean "SIGTERM"?)']


# -- resources --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resources, problem", [
    ({"limits": {"cpu": "one"}}, 'resources.limits[cpu]: "one" is not a quantity'),
    ({"limits": {"memory": "-1Mi"}}, "resources.limits[memory]: must be greater than or equal to 0"),
    ({"limits": {"memory": "1Gi"}, "requests": {"memory": "2Gi"}},
     "resources.requests[memory]: must be less than or equal to memory limit of 1Gi"),
    ({"limits": {"cpu": 1}, "requests": {"cpu": 1.5}}, "resources.requests[cpu]: must be less than or equal to cpu limit of 1"),
    ({"limits": {"memroy": "1Gi"}}, 'resources.limits: "memroy" is not a resource a container can ask for'),
    ({"limit": {"cpu": 1}}, 'resources.limit: unknown field (did you mean "limits"?)'),
])
def test_resource_rules(resources, problem):
    found = errors(make_pod(container={"resources": resources}))
    assert len(found) == 1, found
    assert found[0].startswith("spec.containers[0]." + problem), found


def test_resource_numbers_and_units_compare_exactly():
    resources = {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1073741824"}}
    assert errors(make_pod(container={"resources": resources})) == []


# -- security ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("context, problem", [
    ({"runAsUser": -1}, "runAsUser: must be between 0 and 2147483647, got -1"),
    ({"runAsGroup": "root"}, 'runAsGroup: must be an integer, got string "root"'),
    ({"privileged": "true"}, 'privileged: must be a boolean (true or false), got string "true"'),
    ({"capabilities": {"add": ["NET_ADMN"]}}, 'capabilities.add[0]: "NET_ADMN" is not a Linux capability '
                                              '(did you mean "NET_ADMIN"?)'),
    ({"capabilities": {"drop": "ALL"}}, "capabilities.drop: must be a list"),
    ({"seccompProfile": {"type": "Localhost"}}, "seccompProfile.localhostProfile: required when type is Localhost"),
    ({"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "p.json"}},
     "seccompProfile.localhostProfile: may only be set when type is Localhost"),
    ({"seccompProfile": {"type": "runtime/default"}}, 'seccompProfile.type: unsupported value "runtime/default"'),
    ({"privileged": True, "allowPrivilegeEscalation": False},
     "allowPrivilegeEscalation: cannot be false when privileged is true"),
    ({"allowPrivilegeEscalation": False, "capabilities": {"add": ["CAP_SYS_ADMIN"]}},
     "allowPrivilegeEscalation: cannot be false when capabilities.add has SYS_ADMIN"),
    ({"runAsNonRoot": True, "runAsUser": 0}, "runAsUser: runAsNonRoot is true but runAsUser is 0"),
    ({"procMount": "Masked"}, 'procMount: unsupported value "Masked"'),
])
def test_security_context_rules(context, problem):
    found = errors(make_pod(container={"securityContext": context}))
    assert len(found) == 1, found
    assert found[0].startswith("spec.containers[0].securityContext." + problem), found


def test_capability_spellings_accepted():
    context = {"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME", "net_raw", "ALL"], "drop": ["all"]}}
    assert errors(make_pod(container={"securityContext": context})) == []


def test_pod_security_context_rules():
    context = {"sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}, {"name": "net.ipv4.ip_forward", "value": "0"},
                           {"name": "Net..bad", "value": "1"}, {"name": "kernel.shm_rmid_forced"}],
               "fsGroup": -5, "supplementalGroups": [1, "2"], "fsGroupChangePolicy": "Sometimes"}
    found = errors(make_pod(spec={"securityContext": context}))
    assert [p.split(":")[0] for p in found] == [
        "spec.securityContext.sysctls[2].name",
        "spec.securityContext.sysctls[3].value",
        "spec.securityContext.fsGroup",
        "spec.securityContext.supplementalGroups[1]",
        "spec.securityContext.fsGroupChangePolicy",
        "spec.securityContext.sysctls[1].name",
    ]
    assert found[-1] == 'spec.securityContext.sysctls[1].name: duplicate sysctl "net.ipv4.ip_forward" (also sysctls[0])'


def test_pod_level_run_as_non_root_conflict_reported_once():
    context = {"runAsNonRoot": True, "runAsUser": 0}
    assert errors(make_pod(spec={"securityContext": context})) == [
        "spec.securityContext.runAsUser: must not be 0 when runAsNonRoot is true"]
    # A container that sets its own user is fine.
    assert errors(make_pod(spec={"securityContext": context}, container={"securityContext": {"runAsUser": 1000}})) == [
        "spec.securityContext.runAsUser: must not be 0 when runAsNonRoot is true"]


# -- ConfigMaps and Secrets ---------------------------------------------------------------------------------


def test_config_map_rules():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"ok": "v", "bad key": "v", "num": 3}, "binaryData": {"ok": "aGk=", "raw": "not base64!"},
          "extra": 1}
    assert [p.split(":")[0] for p in errors(make_pod(), cm)] == [
        'document 2 (ConfigMap "c")',
        'document 2 (ConfigMap "c")',
        'document 2 (ConfigMap "c")',
        'document 2 (ConfigMap "c")',
        'document 2 (ConfigMap "c")',
    ]
    found = [p.split(": ", 1)[1] for p in errors(make_pod(), cm)]
    assert found == [
        'data: "bad key" is not a valid key: must consist of alphanumeric characters, \'-\', \'_\' or \'.\'',
        "data[num]: must be a string, got integer 3 (put it in quotes)",
        "binaryData[raw]: must be base64-encoded (put plain text in stringData)",
        "extra: unknown field",
        "binaryData[ok]: duplicate key: also in data",
    ]


def test_secret_rules():
    tls = secret(type="kubernetes.io/tls", data={"tls.crt": "YQ=="})
    assert errors(make_pod(), tls) == [
        'document 2 (Secret "sec"): data: a Secret of type kubernetes.io/tls needs the key tls.key']
    assert errors(make_pod(), secret(stringData={"k": 1})) == [
        'document 2 (Secret "sec"): stringData[k]: must be a string, got integer 1 (put it in quotes)']


def test_duplicate_config_maps():
    assert errors(make_pod(), config_map(), config_map()) == [
        'document 3 (ConfigMap "cfg"): metadata.name: ConfigMap "default/cfg" is already defined by '
        'document 2 (ConfigMap "cfg")']
