"""`minipod describe`: kubectl's layout over hand-built Pod objects."""

from __future__ import annotations

import os

from minipod import describe
from minipod.describe import describe_pod
from minipod.podstatus import parse_rfc3339

T0 = "2026-11-30T05:06:25Z"
NOW = parse_rfc3339("2026-11-30T05:20:00Z")
RUNNING = {"running": {"startedAt": T0}}


def container(name="app", **fields):
    return {"name": name, "image": "localhost/busybox:demo", "imagePullPolicy": "IfNotPresent",
            "resources": {}, **fields}


def status(name="app", state=None, ready=True, restarts=0, last=None):
    return {"name": name, "image": "localhost/busybox:demo", "imageID": "localhost/busybox@sha256:abc",
            "containerID": f"minipod://{name}-id", "ready": ready, "started": ready,
            "restartCount": restarts, "state": state or RUNNING, "lastState": last or {}}


def pod(containers=None, statuses=None, init=None, init_statuses=None, volumes=None, labels=None,
        annotations=None, minipod=None, **status_fields):
    spec = {"containers": containers or [container()], "restartPolicy": "Always"}
    if init:
        spec["initContainers"] = init
    if volumes:
        spec["volumes"] = volumes
    st = {"phase": "Running", "hostIP": "192.0.2.2", "podIP": "10.213.251.2",
          "podIPs": [{"ip": "10.213.251.2"}], "startTime": T0, "qosClass": "BestEffort",
          "conditions": [{"type": t, "status": "True", "lastTransitionTime": T0}
                         for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
          "initContainerStatuses": init_statuses or [],
          "containerStatuses": [status()] if statuses is None else statuses,
          "minipod": minipod if minipod is not None else {"pausePid": 11, "supervisorPid": 10,
                                                          "cgroup": "/mp/pod-u1", "rootDir": "/r/u1",
                                                          "logDir": "/l/u1", "warnings": []},
          **status_fields}
    meta = {"name": "web", "namespace": "default", "uid": "u1", "creationTimestamp": T0,
            "labels": labels or {}, "annotations": annotations or {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": st}


def lines(text):
    return text.split("\n")


def field(text, label, after=None):
    """The value on the first line whose label is ``label`` (below the line ``after``, if given)."""
    out = lines(text)
    if after:
        out = out[next(i for i, line in enumerate(out) if line.strip() == after):]
    for line in out:
        if line.strip().startswith(label):
            return line.strip()[len(label):].strip()
    raise AssertionError(f"no {label!r} in:\n{text}")


def block(text, first, count):
    out = lines(text)
    start = next(i for i, line in enumerate(out) if line.startswith(first))
    return out[start:start + count]


# -- the pod -------------------------------------------------------------------------------

def test_header_is_kubectls_with_the_host_as_node():
    out = describe_pod(pod(labels={"tier": "web", "app": "kubia"}, annotations={"note": "hi"}), [], NOW)
    assert lines(out)[:11] == [
        "Name:         web",
        "Namespace:    default",
        f"Node:         {os.uname().nodename}/192.0.2.2",
        "Start Time:   Mon, 30 Nov 2026 05:06:25 +0000",
        "Labels:       app=kubia",
        "              tier=web",
        "Annotations:  note: hi",
        "Status:       Running",
        "IP:           10.213.251.2",
        "IPs:",
        "  IP:  10.213.251.2",
    ]
    assert "\t" not in out
    # Left out on purpose (see the module docstring).
    for absent in ("Priority:", "Node-Selectors:", "Tolerations:", "Service Account:"):
        assert absent not in out


def test_pending_pod_without_ip_with_reason_and_service_account():
    p = pod(phase="Unknown", reason="SupervisorGone", message="the supervisor is gone", labels={})
    p["spec"]["serviceAccountName"] = "robot"
    del p["status"]["podIP"], p["status"]["podIPs"]
    out = describe_pod(p, [], NOW)
    assert field(out, "Service Account:") == "robot"
    assert field(out, "Labels:") == "<none>"
    assert field(out, "Status:") == "Unknown"
    assert field(out, "Reason:") == "SupervisorGone"
    assert field(out, "Message:") == "the supervisor is gone"
    assert "IP:" in lines(out)  # kubectl keeps the line, empty
    assert field(out, "IPs:") == "<none>"


def test_long_or_multiline_annotations_get_lines_of_their_own():
    out = describe_pod(pod(annotations={"a": "short", "b": "x" * 150, "c": "one\ntwo\n"}), [], NOW)
    assert block(out, "Annotations:", 6) == [
        "Annotations:  a: short",
        "              b:",
        "                " + "x" * 138 + "...",
        "              c:",
        "                one",
        "                two",
    ]


def test_conditions_table():
    out = describe_pod(pod(), [], NOW)
    assert block(out, "Conditions:", 6) == [
        "Conditions:",
        "  Type              Status",
        "  PodScheduled      True",
        "  Initialized       True",
        "  ContainersReady   True",
        "  Ready             True",
    ]
    assert field(out, "QoS Class:") == "BestEffort"


def test_minipod_block_shows_what_is_known_and_warnings():
    facts = {"pausePid": 11, "supervisorPid": None, "cgroup": "/mp/pod-u1", "rootDir": "/r/u1",
             "warnings": ["memory limit not enforced: no memory controller", "rlimit nofile: EPERM"]}
    out = describe_pod(pod(minipod=facts), [], NOW)
    assert block(out, "minipod:", 6) == [
        "minipod:",
        "  Pause PID:  11",
        "  Cgroup:     /mp/pod-u1",
        "  Root Dir:   /r/u1",
        "  Warnings:   memory limit not enforced: no memory controller",
        "              rlimit nofile: EPERM",
    ]
    assert "Supervisor PID" not in out
    assert "minipod:" not in lines(describe_pod(pod(minipod={"warnings": []}), [], NOW))


# -- containers ----------------------------------------------------------------------------

PROBED = container(
    command=["httpd", "-f", "-p", "8080"], args=["-h", "/www\n/alt"],
    ports=[{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP", "hostPort": 5353}],
    resources={"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
    livenessProbe={"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
    readinessProbe={"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 2},
    startupProbe={"exec": {"command": ["cat", "/tmp/ok"]}, "failureThreshold": 30},
)


def test_running_container_with_ports_command_resources_and_probes():
    out = describe_pod(pod(containers=[PROBED]), [], NOW)
    assert block(out, "Containers:", 31) == [
        "Containers:",
        "  app:",
        "    Container ID:  minipod://app-id",
        "    Image:         localhost/busybox:demo",
        "    Image ID:      localhost/busybox@sha256:abc",
        "    Ports:         8080/TCP, 53/UDP",
        "    Host Ports:    0/TCP, 5353/UDP",
        "    Command:",
        "      httpd",
        "      -f",
        "      -p",
        "      8080",
        "    Args:",
        "      -h",
        "      /www",
        "      /alt",
        "    State:          Running",
        "      Started:      Mon, 30 Nov 2026 05:06:25 +0000",
        "    Ready:          True",
        "    Restart Count:  0",
        "    Limits:",
        "      cpu:     500m",
        "      memory:  64Mi",
        "    Requests:",
        # As with kubectl's tabwriter, the rows up to Mounts share one column.
        "      cpu:        250m",
        "      memory:     64Mi",
        "    Liveness:     http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3",
        "    Readiness:    tcp-socket :8080 delay=5s timeout=1s period=2s #success=1 #failure=3",
        "    Startup:      exec [cat /tmp/ok] delay=0s timeout=1s period=10s #success=1 #failure=30",
        "    Environment:  <none>",
        "    Mounts:       <none>",
    ]


def test_single_port_and_no_port():
    out = describe_pod(pod(containers=[container(ports=[{"containerPort": 8080, "protocol": "TCP"}])]), [], NOW)
    assert field(out, "Port:") == "8080/TCP"
    assert field(out, "Host Port:") == "0/TCP"
    out = describe_pod(pod(), [], NOW)
    assert field(out, "Port:") == "<none>"
    assert field(out, "Host Port:") == "<none>"


def test_probe_forms():
    grpc = {"grpc": {"port": 9090}, "timeoutSeconds": 2}
    assert describe.describe_probe(grpc) == "grpc <pod>:9090  delay=0s timeout=2s period=10s #success=1 #failure=3"
    named = {"grpc": {"port": 9090, "service": "health"}}
    assert describe.describe_probe(named).startswith("grpc <pod>:9090 health delay=0s")
    https = {"httpGet": {"host": "::1", "port": "web", "path": "ready", "scheme": "HTTPS"}}
    assert describe.describe_probe(https).startswith("http-get https://[::1]:web/ready delay=0s")
    tcp = {"tcpSocket": {"host": "127.0.0.1", "port": 22}}
    assert describe.describe_probe(tcp).startswith("tcp-socket 127.0.0.1:22 delay=0s")


def test_crash_looping_container_shows_waiting_and_last_termination():
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=app"}}
    last = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-30T05:19:01Z",
                           "finishedAt": "2026-11-30T05:19:02Z", "containerID": "minipod://app-id"}}
    out = describe_pod(pod(statuses=[status(state=waiting, ready=False, restarts=4, last=last)]), [], NOW)
    assert block(out, "    State:", 10) == [
        "    State:          Waiting",
        "      Reason:       CrashLoopBackOff",
        "      Message:      back-off 40s restarting failed container=app",
        "    Last State:     Terminated",
        "      Reason:       Error",
        "      Exit Code:    1",
        "      Started:      Mon, 30 Nov 2026 05:19:01 +0000",
        "      Finished:     Mon, 30 Nov 2026 05:19:02 +0000",
        "    Ready:          False",
        "    Restart Count:  4",
    ]


def test_terminated_by_signal_with_message_and_no_start_time():
    term = {"terminated": {"exitCode": 128, "reason": "StartError", "message": "exec: no such file",
                           "finishedAt": "2026-11-30T05:19:02Z"}}
    killed = {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled",
                             "startedAt": T0, "finishedAt": T0}}
    out = describe_pod(pod(statuses=[status(state=term, ready=False, last=killed)]), [], NOW)
    assert field(out, "Message:", after="app:") == "exec: no such file"
    assert field(out, "Exit Code:") == "128"
    assert field(out, "Signal:") == "9"
    # A time never recorded is left out, not shown as year 1.
    state = block(out, "    State:", 5)
    assert state[-1] == "      Finished:     Mon, 30 Nov 2026 05:19:02 +0000"
    assert not any("Started" in line for line in state)
    assert field(out, "Reason:", after="app:") == "StartError"


def test_container_without_status_has_no_state_lines():
    out = describe_pod(pod(statuses=[]), [], NOW)
    assert "Container ID" not in out and "Image ID" not in out and "State:" not in out
    assert field(out, "Image:") == "localhost/busybox:demo"


def test_init_containers_and_a_native_sidecar():
    init = [container("setup", command=["sh", "-c", "echo hi"]),
            container("shipper", restartPolicy="Always")]
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": T0, "finishedAt": T0}}
    out = describe_pod(pod(init=init, init_statuses=[status("setup", state=done, ready=False), status("shipper")]),
                       [], NOW)
    text = lines(out)
    assert text.index("Init Containers:") < text.index("  setup:") < text.index("  shipper:") \
        < text.index("Containers:") < text.index("  app:")
    assert block(out, "  shipper:", 7)[-2:] == [
        "    Host Port:       <none>",
        "    Restart Policy:  Always",
    ]
    setup = text[text.index("  setup:"):text.index("  shipper:")]
    assert "Restart Policy" not in "\n".join(setup)
    assert "    State:          Terminated" in setup
    assert "      Reason:       Completed" in setup
    assert "      Exit Code:    0" in setup
    assert "Init Containers:" not in describe_pod(pod(), [], NOW)


def test_environment_sources():
    env = [
        {"name": "PLAIN", "value": "1"},
        {"name": "EMPTY"},
        {"name": "MULTI", "value": "a\nb"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "color"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token", "optional": True}}},
    ]
    env_from = [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}, {"secretRef": {"name": "creds"}}]
    ctr = container(env=env, envFrom=env_from, resources={"limits": {"memory": "64Mi"}})
    out = describe_pod(pod(containers=[ctr]), [], NOW)
    assert block(out, "    Environment Variables from:", 15) == [
        "    Environment Variables from:",
        "      settings  ConfigMap with prefix 'APP_'  Optional: false",
        "      creds     Secret                        Optional: false",
        "    Environment:",
        "      PLAIN:     1",
        "      EMPTY:",
        "      MULTI:     a",
        "                 b",
        "      POD_NAME:  web (v1:metadata.name)",
        "      POD_IP:    10.213.251.2 (v1:status.podIP)",
        "      MEM:       64Mi (limits.memory)",
        "      CPU:       node allocatable (limits.cpu)",
        "      COLOR:     <set to the key 'color' of config map 'cm'>  Optional: false",
        "      TOKEN:     <set to the key 'token' in secret 'creds'>   Optional: true",
        "    Mounts:      <none>",
    ]


# -- volumes -------------------------------------------------------------------------------

def test_volumes_of_several_kinds_and_mounts():
    volumes = [
        {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "site", "configMap": {"name": "kubia-site", "defaultMode": 493}},
        {"name": "creds", "secret": {"secretName": "creds", "optional": True, "defaultMode": 420}},
        {"name": "host", "hostPath": {"path": "/srv/data", "type": "DirectoryOrCreate"}},
        {"name": "bare", "hostPath": {"path": "/srv/bare", "type": ""}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"resource": "limits.memory"}}]}},
        {"name": "all", "projected": {"sources": [{"configMap": {"name": "cm"}},
                                                  {"secret": {"name": "s", "optional": False}},
                                                  {"downwardAPI": {"items": []}}]}},
    ]
    mounts = [{"name": "site", "mountPath": "/www/cgi-bin", "readOnly": True},
              {"name": "cache", "mountPath": "/data", "subPath": "app"}]
    out = describe_pod(pod(containers=[container(volumeMounts=mounts)], volumes=volumes), [], NOW)
    assert block(out, "    Mounts:", 3) == [
        "    Mounts:",
        '      /data from cache (rw,path="app")',
        "      /www/cgi-bin from site (ro)",
    ]
    assert block(out, "Volumes:", 42) == [
        "Volumes:",
        "  cache:",
        "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)",
        "    Medium:     Memory",
        "    SizeLimit:  64Mi",
        "  scratch:",
        "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)",
        "    Medium:",
        "    SizeLimit:  <unset>",
        "  site:",
        "    Type:      ConfigMap (a volume populated by a ConfigMap)",
        "    Name:      kubia-site",
        "    Optional:  false",
        "  creds:",
        "    Type:        Secret (a volume populated by a Secret)",
        "    SecretName:  creds",
        "    Optional:    true",
        "  host:",
        "    Type:          HostPath (bare host directory volume)",
        "    Path:          /srv/data",
        "    HostPathType:  DirectoryOrCreate",
        "  bare:",
        "    Type:          HostPath (bare host directory volume)",
        "    Path:          /srv/bare",
        "    HostPathType:",
        "  info:",
        "    Type:  DownwardAPI (a volume populated by information about the pod)",
        "    Items:",
        "      metadata.labels -> labels",
        "      limits.memory -> mem",
        "  all:",
        "    Type:                Projected (a volume that contains injected data from multiple sources)",
        "    ConfigMapName:       cm",
        "    ConfigMapOptional:   <nil>",
        "    SecretName:          s",
        "    SecretOptionalName:  false",
        "    DownwardAPI:         true",
        # kubectl's tabwriter carries the column on into the next rows with cells.
        "QoS Class:               BestEffort",
        "minipod:",
        "  Pause PID:       11",
        "  Supervisor PID:  10",
        "  Cgroup:          /mp/pod-u1",
    ]


def test_no_volumes():
    assert field(describe_pod(pod(), [], NOW), "Volumes:") == "<none>"


# -- events --------------------------------------------------------------------------------

def event(reason, message, first, last=None, count=1, kind="Normal", obj="app"):
    return {"type": kind, "reason": reason, "message": message, "object": obj, "count": count,
            "firstTimestamp": first, "lastTimestamp": last or first}


def test_events_table_with_ages_and_counts():
    events = [
        event("Pulled", "Container image \"localhost/busybox:demo\" already present", "2026-11-30T05:06:25Z"),
        event("BackOff", "Back-off restarting failed container app", "2026-11-30T05:14:30Z",
              "2026-11-30T05:16:58Z", count=4, kind="Warning"),
        event("Started", "Started container app ", "2026-11-30T05:19:48Z"),
    ]
    out = describe_pod(pod(), events, NOW)
    assert lines(out)[-7:] == [
        "Events:",
        "  Type     Reason   Age                   From     Message",
        "  ----     ------   ----                  ----     -------",
        "  Normal   Pulled   13m                   minipod  Container image \"localhost/busybox:demo\" already present",
        "  Warning  BackOff  3m2s (x4 over 5m30s)  minipod  Back-off restarting failed container app",
        "  Normal   Started  12s                   minipod  Started container app",
        "",
    ]


def test_events_are_listed_by_last_occurrence():
    repeated = event("BackOff", "Back-off", "2026-11-30T05:10:00Z", "2026-11-30T05:19:00Z", count=9)
    once = event("Killing", "Stopping container app", "2026-11-30T05:12:00Z")
    out = describe_pod(pod(), [repeated, once], NOW)
    assert [line.split()[1] for line in lines(out)[-3:-1]] == ["Killing", "BackOff"]
    assert lines(out)[-2] == "  Normal  BackOff  60s (x9 over 10m)  minipod  Back-off"


def test_no_events():
    out = describe_pod(pod(minipod={}), [], NOW)
    # One column with the Conditions table above, as kubectl's tabwriter makes it.
    assert lines(out)[-4:] == ["Volumes:            <none>", "QoS Class:          BestEffort",
                               "Events:             <none>", ""]


# -- layout --------------------------------------------------------------------------------

def test_align_sets_widths_per_block_of_rows_with_that_column():
    rows = [("a:", "1"), ("long name:", "2", "x"), ("title",), ("b:", "3"), ("c:", "4", "y"), ("dd:", "5", "z")]
    assert describe._align(rows) == [
        "a:          1",
        "long name:  2  x",
        "title",
        "b:   3",
        "c:   4  y",
        "dd:  5  z",
    ]
