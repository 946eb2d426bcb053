"""``minipod describe POD``: a pod laid out the way ``kubectl describe pod`` does.

Pure formatting over the Pod object of ``inspect`` (``podstatus.pod_object``)
and the pod's events, so people who know kubectl read it at a glance and the
layout is testable without root. Every section is a helper that returns rows;
a row is a tuple of cells, and ``_align`` pads all cells but the last the way
kubectl's tabwriter does.

Left out on purpose: Priority (minipod has no scheduler to rank pods), and
Node-Selectors / Tolerations: minipod warns about them at ``run`` and ignores
them, so a line for them would be noise at best and suggest they apply at worst.
"""

from __future__ import annotations

import os
import time

from .envvars import field_value, resource_value
from .podstatus import age, parse_rfc3339

Row = tuple[str, ...]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def describe_pod(pod: dict, events: list[dict], now: float | None = None) -> str:
    """The text of ``minipod describe`` for ``pod`` (a Pod object as
    ``inspect`` prints it) and its ``events``, listed as kubectl does by
    their last occurrence; ``now`` (seconds since the epoch) fixes the event
    ages for tests."""
    spec, status = pod["spec"], pod["status"]
    rows = _pod_header(pod, os.uname().nodename)
    if spec.get("initContainers"):
        rows += _containers("Init Containers", spec["initContainers"],
                            status.get("initContainerStatuses", []), pod)
    rows += _containers("Containers", spec.get("containers", []), status.get("containerStatuses", []), pod)
    rows += _conditions(status.get("conditions", []))
    rows += _volumes(spec.get("volumes", []))
    rows.append(("QoS Class:", status.get("qosClass", "BestEffort")))
    rows += _minipod_facts(status.get("minipod") or {})
    rows += _events(events, now)
    return "\n".join(_align(rows)) + "\n"


# -- layout -------------------------------------------------------------------------------

def _align(rows: list[Row], padding: int = 2) -> list[str]:
    """Pad every cell but a row's last to its column's width, as Go's
    tabwriter does for kubectl: a width holds for a *block* of consecutive
    rows that have that column, so a row with fewer cells (a section title)
    ends the block and each section lines up on its own."""
    widths = [[0] * (len(row) - 1) for row in rows]

    def fit(column: int, start: int, end: int) -> None:
        i = start
        while i < end:
            if len(rows[i]) - 1 <= column:
                i += 1
                continue
            j = i
            while j < end and len(rows[j]) - 1 > column:
                j += 1
            width = max(len(rows[k][column]) for k in range(i, j)) + padding
            for k in range(i, j):
                widths[k][column] = width
            fit(column + 1, i, j)
            i = j

    fit(0, 0, len(rows))
    return [("".join(cell.ljust(w) for cell, w in zip(row, ws)) + row[-1]).rstrip()
            for row, ws in zip(rows, widths)]


def _when(timestamp: str) -> str:
    """kubectl's time format (Go's RFC1123Z), in UTC: Mon, 30 Nov 2026 05:06:25 +0000."""
    secs = parse_rfc3339(timestamp)
    if secs is None:
        return str(timestamp)
    t = time.gmtime(secs)
    # Not strftime: %a and %b follow the locale, kubectl's names do not.
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")


def _listing(title: str, lines: list[str]) -> list[Row]:
    """A title whose value spans several lines, aligned under the first."""
    if not lines:
        return [(title, "<none>")]
    return [(title, lines[0])] + [("", line) for line in lines[1:]]


def _bool(value) -> str:
    return "true" if value else "false"


# -- the pod ------------------------------------------------------------------------------

def _pod_header(pod: dict, node: str) -> list[Row]:
    meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
    rows: list[Row] = [("Name:", meta["name"]), ("Namespace:", meta.get("namespace", "default"))]
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account:
        rows.append(("Service Account:", account))
    host_ip = status.get("hostIP")
    rows.append(("Node:", f"{node}/{host_ip}" if host_ip else node))
    if status.get("startTime"):
        rows.append(("Start Time:", _when(status["startTime"])))
    labels = meta.get("labels") or {}
    rows += _listing("Labels:", [f"{k}={v}" for k, v in sorted(labels.items())])
    rows += _annotations(meta.get("annotations") or {})
    rows.append(("Status:", status.get("phase", "Unknown")))
    if status.get("reason"):
        rows.append(("Reason:", status["reason"]))
    if status.get("message"):
        rows.append(("Message:", status["message"]))
    rows.append(("IP:", status.get("podIP") or ""))
    ips = [entry["ip"] for entry in status.get("podIPs") or []]
    rows += ([("IPs:",)] + [("  IP:", ip) for ip in ips]) if ips else [("IPs:", "<none>")]
    return rows


_MAX_ANNOTATION = 140  # kubectl's limit before it puts a value on lines of its own


def _annotations(annotations: dict) -> list[Row]:
    lines: list[str] = []
    for key, value in sorted(annotations.items()):
        value = str(value).removesuffix("\n")
        if len(key) + len(value) + 2 > _MAX_ANNOTATION or "\n" in value:
            lines.append(f"{key}:")
            lines += [f"  {_shorten(part, _MAX_ANNOTATION - 2)}" for part in value.split("\n")]
        else:
            lines.append(f"{key}: {value}")
    return _listing("Annotations:", lines)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _conditions(conditions: list[dict]) -> list[Row]:
    if not conditions:
        return []
    # The trailing spaces are kubectl's: its Type column is one wider than the longest type.
    return [("Conditions:",), ("  Type", "Status")] + [
        (f"  {c['type']} ", f"{c['status']} ") for c in conditions]


def _minipod_facts(facts: dict) -> list[Row]:
    """What only minipod knows, each line only when it is known."""
    fields = (("Pause PID:", "pausePid"), ("Supervisor PID:", "supervisorPid"), ("Cgroup:", "cgroup"),
              ("Root Dir:", "rootDir"), ("Log Dir:", "logDir"))
    rows = [(f"  {title}", str(facts[key])) for title, key in fields if facts.get(key) is not None]
    if facts.get("warnings"):
        rows += [(f"  {title}", value) for title, value in _listing("Warnings:", facts["warnings"])]
    return [("minipod:",)] + rows if rows else []


def _events(events: list[dict], now: float | None) -> list[Row]:
    if not events:
        return [("Events:", "<none>")]
    rows: list[Row] = [("Events:",), ("  Type", "Reason", "Age", "From", "Message"),
                       ("  ----", "------", "----", "----", "-------")]
    # kubectl lists by last occurrence: an event that keeps repeating moves down.
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("firstTimestamp") or ""):
        rows.append((f"  {event['type']}", event["reason"], _event_age(event, now), "minipod",
                     event.get("message", "").strip()))
    return rows


def _event_age(event: dict, now: float | None) -> str:
    first = age(event.get("firstTimestamp"), now)
    count = event.get("count", 1)
    if count > 1:
        return f"{age(event.get('lastTimestamp'), now)} (x{count} over {first})"
    return first


# -- containers ---------------------------------------------------------------------------

def _containers(title: str, containers: list[dict], statuses: list[dict], pod: dict) -> list[Row]:
    by_name = {s["name"]: s for s in statuses}
    rows: list[Row] = [(f"{title}:",) if containers else (f"{title}: <none>",)]
    for ctr in containers:
        status = by_name.get(ctr["name"])
        rows.append((f"  {ctr['name']}:",))
        rows += _container_basics(ctr, status)
        rows += _command_lines(ctr)
        if status:
            rows += _container_state(status)
        rows += _resources(ctr.get("resources") or {})
        rows += _probes(ctr)
        rows += _env_from(ctr.get("envFrom") or [])
        rows += _env(ctr, pod)
        rows += _mounts(ctr.get("volumeMounts") or [])
    return rows


def _container_basics(ctr: dict, status: dict | None) -> list[Row]:
    rows: list[Row] = []
    if status:
        rows.append(("    Container ID:", status.get("containerID", "")))
    rows.append(("    Image:", ctr.get("image", "")))
    if status:
        rows.append(("    Image ID:", status.get("imageID", "")))
    ports = ctr.get("ports") or []
    own = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in ports)
    host = ", ".join(f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports)
    rows.append(("    Ports:" if len(ports) > 1 else "    Port:", own or "<none>"))
    rows.append(("    Host Ports:" if len(ports) > 1 else "    Host Port:", host or "<none>"))
    if ctr.get("restartPolicy"):  # an init container with Always is a native sidecar
        rows.append(("    Restart Policy:", ctr["restartPolicy"]))
    return rows


def _command_lines(ctr: dict) -> list[Row]:
    rows: list[Row] = []
    for title, field in (("Command:", "command"), ("Args:", "args")):
        if ctr.get(field):
            rows.append((f"    {title}",))
            rows += [(f"      {line}",) for arg in ctr[field] for line in str(arg).split("\n")]
    return rows


def _container_state(status: dict) -> list[Row]:
    rows = _state("State", status.get("state") or {})
    last = status.get("lastState") or {}
    if "terminated" in last:
        rows += _state("Last State", last)
    rows.append(("    Ready:", "True" if status.get("ready") else "False"))
    rows.append(("    Restart Count:", str(status.get("restartCount", 0))))
    return rows


def _state(title: str, state: dict) -> list[Row]:
    if "running" in state:
        return [(f"    {title}:", "Running")] + _times(state["running"], ("Started", "startedAt"))
    if "terminated" in state:
        term = state["terminated"]
        rows: list[Row] = [(f"    {title}:", "Terminated")]
        if term.get("reason"):
            rows.append(("      Reason:", term["reason"]))
        if term.get("message"):
            rows.append(("      Message:", term["message"]))
        rows.append(("      Exit Code:", str(term.get("exitCode", 0))))
        if term.get("signal"):
            rows.append(("      Signal:", str(term["signal"])))
        return rows + _times(term, ("Started", "startedAt"), ("Finished", "finishedAt"))
    waiting = state.get("waiting") or {}
    rows = [(f"    {title}:", "Waiting")]
    if waiting.get("reason"):
        rows.append(("      Reason:", waiting["reason"]))
    # kubectl leaves this out; minipod's say why it waits ("back-off 10s restarting…").
    if waiting.get("message"):
        rows.append(("      Message:", waiting["message"]))
    return rows


def _times(state: dict, *fields: tuple[str, str]) -> list[Row]:
    """Started/Finished lines; a time never recorded is left out rather than
    shown as kubectl's zero time (Mon, 01 Jan 0001)."""
    return [(f"      {title}:", _when(state[key])) for title, key in fields if state.get(key)]


def _resources(resources: dict) -> list[Row]:
    rows: list[Row] = []
    for title, field in (("Limits:", "limits"), ("Requests:", "requests")):
        amounts = resources.get(field) or {}
        if amounts:
            rows.append((f"    {title}",))
            rows += [(f"      {name}:", str(amounts[name])) for name in sorted(amounts)]
    return rows


def _probes(ctr: dict) -> list[Row]:
    titles = (("Liveness:", "livenessProbe"), ("Readiness:", "readinessProbe"), ("Startup:", "startupProbe"))
    return [(f"    {title}", describe_probe(ctr[field])) for title, field in titles if ctr.get(field)]


def describe_probe(probe: dict) -> str:
    """One probe as kubectl shows it: ``http-get http://:8080/healthz delay=0s
    timeout=1s period=10s #success=1 #failure=3``."""
    attrs = (f"delay={probe.get('initialDelaySeconds', 0)}s timeout={probe.get('timeoutSeconds', 1)}s "
             f"period={probe.get('periodSeconds', 10)}s #success={probe.get('successThreshold', 1)} "
             f"#failure={probe.get('failureThreshold', 3)}")
    if "exec" in probe:
        return f"exec [{' '.join(probe['exec'].get('command') or [])}] {attrs}"
    if "httpGet" in probe:
        get = probe["httpGet"]
        scheme = str(get.get("scheme", "HTTP")).lower()
        path = get.get("path", "/")
        path = path if path.startswith("/") else "/" + path
        return f"http-get {scheme}://{_host_port(get.get('host', ''), get.get('port'))}{path} {attrs}"
    if "tcpSocket" in probe:
        sock = probe["tcpSocket"]
        return f"tcp-socket {sock.get('host', '')}:{sock.get('port')} {attrs}"
    if "grpc" in probe:
        grpc = probe["grpc"]
        return f"grpc <pod>:{grpc.get('port')} {grpc.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _host_port(host: str, port) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 host is bracketed


def _env_from(sources: list[dict]) -> list[Row]:
    if not sources:
        return []
    rows: list[Row] = [("    Environment Variables from:",)]
    for source in sources:
        if "configMapRef" in source:
            kind, ref = "ConfigMap", source["configMapRef"]
        else:
            kind, ref = "Secret", source.get("secretRef") or {}
        if source.get("prefix"):
            kind += f" with prefix '{source['prefix']}'"
        rows.append((f"      {ref.get('name', '')}", kind, f"Optional: {_bool(ref.get('optional'))}"))
    return rows


def _env(ctr: dict, pod: dict) -> list[Row]:
    env = ctr.get("env") or []
    if not env:
        return [("    Environment:", "<none>")]
    rows: list[Row] = [("    Environment:",)]
    for var in env:
        name = f"      {var['name']}:"
        source = var.get("valueFrom")
        if source is None:
            first, *more = str(var.get("value", "")).split("\n")
            rows += [(name, first)] + [("      ", line) for line in more]
        else:
            rows.append((name, *_env_source(source, ctr, pod)))
    return rows


def _env_source(source: dict, ctr: dict, pod: dict) -> tuple[str, ...]:
    """The value cells of an env var set from elsewhere, in kubectl's words."""
    if "fieldRef" in source:
        ref = source["fieldRef"]
        status = pod["status"]
        known = {"podIP": status.get("podIP"), "hostIP": status.get("hostIP"), "nodeName": os.uname().nodename}
        value = field_value(pod, ref.get("fieldPath", ""), known)
        return (f"{value} ({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})",)
    if "resourceFieldRef" in source:
        resource = source["resourceFieldRef"].get("resource", "")
        value = resource_value(ctr, source["resourceFieldRef"])
        if value == "0" and resource in ("limits.cpu", "limits.memory"):
            value = "node allocatable"
        return (f"{value} ({resource})",)
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return (f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>",
                f"Optional: {_bool(ref.get('optional'))}")
    ref = source.get("configMapKeyRef") or {}
    return (f"<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>",
            f"Optional: {_bool(ref.get('optional'))}")


def _mounts(mounts: list[dict]) -> list[Row]:
    if not mounts:
        return [("    Mounts:", "<none>")]
    rows: list[Row] = [("    Mounts:",)]
    for mount in sorted(mounts, key=lambda m: m.get("mountPath", "")):
        flags = ["ro" if mount.get("readOnly") else "rw"]
        if mount.get("subPath"):
            flags.append(f'path="{mount["subPath"]}"')
        rows.append((f"      {mount.get('mountPath')} from {mount.get('name')} ({','.join(flags)})",))
    return rows


# -- volumes ------------------------------------------------------------------------------

def _volumes(volumes: list[dict]) -> list[Row]:
    if not volumes:
        return [("Volumes:", "<none>")]
    rows: list[Row] = [("Volumes:",)]
    for volume in volumes:
        rows.append((f"  {volume['name']}:",))
        rows += _volume_source(volume)
    return rows


def _volume_source(volume: dict) -> list[Row]:
    """kubectl's text for each kind of volume minipod supports."""
    if "emptyDir" in volume:
        src = volume["emptyDir"] or {}
        size = src.get("sizeLimit")
        return [("    Type:", "EmptyDir (a temporary directory that shares a pod's lifetime)"),
                ("    Medium:", src.get("medium", "")),
                ("    SizeLimit:", str(size) if size not in (None, 0, "0") else "<unset>")]
    if "configMap" in volume:
        src = volume["configMap"]
        return [("    Type:", "ConfigMap (a volume populated by a ConfigMap)"),
                ("    Name:", src.get("name", "")), ("    Optional:", _bool(src.get("optional")))]
    if "secret" in volume:
        src = volume["secret"]
        return [("    Type:", "Secret (a volume populated by a Secret)"),
                ("    SecretName:", src.get("secretName", "")), ("    Optional:", _bool(src.get("optional")))]
    if "hostPath" in volume:
        src = volume["hostPath"]
        return [("    Type:", "HostPath (bare host directory volume)"), ("    Path:", src.get("path", "")),
                ("    HostPathType:", src.get("type", "<none>"))]
    if "downwardAPI" in volume:
        return [("    Type:", "DownwardAPI (a volume populated by information about the pod)"),
                ("    Items:",)] + _downward_items(volume["downwardAPI"].get("items") or [])
    if "projected" in volume:
        return [("    Type:", "Projected (a volume that contains injected data from multiple sources)")] + [
            row for source in volume["projected"].get("sources") or [] for row in _projection(source)]
    return [("  <unknown>",)]


def _downward_items(items: list[dict]) -> list[Row]:
    rows: list[Row] = []
    for item in items:
        ref = item.get("fieldRef") or {}
        field = ref.get("fieldPath") or (item.get("resourceFieldRef") or {}).get("resource")
        rows.append((f"      {field} -> {item.get('path')}",))
    return rows


def _projection(source: dict) -> list[Row]:
    # kubectl's labels, SecretOptionalName included; an unset optional shows as <nil> there too.
    def optional(ref: dict) -> str:
        return "<nil>" if ref.get("optional") is None else _bool(ref["optional"])

    if "secret" in source:
        ref = source["secret"]
        return [("    SecretName:", ref.get("name", "")), ("    SecretOptionalName:", optional(ref))]
    if "configMap" in source:
        ref = source["configMap"]
        return [("    ConfigMapName:", ref.get("name", "")), ("    ConfigMapOptional:", optional(ref))]
    if "downwardAPI" in source:
        return [("    DownwardAPI:", "true")]
    return []
