"""The pod sandbox: the pause process that owns the shared namespaces, and the
per-pod files every container sees (``/etc/hosts``, ``/etc/hostname``,
``/etc/resolv.conf``).

The pause process is created with new network, IPC and UTS namespaces (and a
PID namespace of which it is PID 1 when ``shareProcessNamespace`` is set).
It does nothing else; because the namespaces belong to it, containers can
come and go without the pod losing its hostname, its loopback or its IP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .plan import (
    CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUTS, Clone, Dup2, Exec, LinkUp, Plan,
    SetHostname, WriteFile,
)
from .spec.sysctls import proc_path

SHARED_NAMESPACES = ("net", "ipc", "uts", "pid")


@dataclass(frozen=True)
class SandboxShape:
    """Which namespaces the pause process creates; the rest are the host's."""

    net: bool = True
    ipc: bool = True
    uts: bool = True
    pid: bool = False

    @classmethod
    def of(cls, spec: dict) -> "SandboxShape":
        host_network = bool(spec.get("hostNetwork"))
        return cls(
            net=not host_network,
            # With hostNetwork the pod also has the host's hostname, as in Kubernetes.
            uts=not host_network,
            ipc=not spec.get("hostIPC"),
            pid=bool(spec.get("shareProcessNamespace")) and not spec.get("hostPID"),
        )

    @property
    def clone_flags(self) -> int:
        return ((CLONE_NEWNET if self.net else 0) | (CLONE_NEWIPC if self.ipc else 0)
                | (CLONE_NEWUTS if self.uts else 0) | (CLONE_NEWPID if self.pid else 0))

    def owned(self) -> list[str]:
        return [ns for ns in SHARED_NAMESPACES if getattr(self, ns)]


def pod_hostname(pod: dict) -> str:
    """``spec.hostname`` or the pod name cut to a DNS label, as Kubernetes does."""
    spec = pod["spec"]
    if spec.get("hostNetwork"):
        return os.uname().nodename  # the host's UTS namespace, so its name
    if spec.get("hostname"):
        return spec["hostname"]
    return pod["metadata"]["name"][:63].rstrip("-.")


def hosts_file(hostname: str, pod_ip: str | None, subdomain: str | None, namespace: str,
               host_aliases: list | None) -> str:
    lines = [
        "# Kubernetes-managed hosts file (minipod).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    names = hostname
    if subdomain:
        names = f"{hostname}.{subdomain}.{namespace}.svc.cluster.local\t{hostname}"
    # Without a pod IP the hostname still has to resolve, to a loopback address.
    lines.append(f"{pod_ip or '127.0.1.1'}\t{names}")
    for alias in host_aliases or []:
        lines.append(f"{alias['ip']}\t{' '.join(alias.get('hostnames') or [])}")
    return "\n".join(lines) + "\n"


def resolv_conf(host_resolv: str, dns_policy: str, dns_config: dict | None,
                pod_has_own_network: bool) -> str:
    """No cluster DNS exists on one host, so ClusterFirst behaves as Default:
    the host's resolvers. Loopback resolvers (systemd-resolved's 127.0.0.53)
    are unreachable from a pod's own network namespace and are dropped."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if dns_policy != "None":
        for line in host_resolv.splitlines():
            parts = line.split()
            if not parts or parts[0].startswith(("#", ";")):
                continue
            if parts[0] == "nameserver" and len(parts) > 1:
                if pod_has_own_network and parts[1].startswith(("127.", "::1")):
                    continue
                nameservers.append(parts[1])
            elif parts[0] in ("search", "domain"):
                searches.extend(parts[1:])
            elif parts[0] == "options":
                options.extend(parts[1:])
    dns_config = dns_config or {}
    nameservers += dns_config.get("nameservers") or []
    searches += dns_config.get("searches") or []
    for opt in dns_config.get("options") or []:
        options.append(f"{opt['name']}:{opt['value']}" if opt.get("value") else opt["name"])
    out = [f"nameserver {ns}" for ns in dict.fromkeys(nameservers)]
    if searches:
        out.append("search " + " ".join(dict.fromkeys(searches)))
    if options:
        out.append("options " + " ".join(dict.fromkeys(options)))
    return "\n".join(out) + "\n"


def read_host_resolv_conf() -> str:
    """The host's resolvers. When /etc/resolv.conf only points at
    systemd-resolved's stub (127.0.0.53), which a pod's network namespace
    cannot reach, take resolved's list of real upstream servers, as
    container runtimes do."""
    def read(path: str) -> str:
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    text = read("/etc/resolv.conf")
    servers = [line.split()[1] for line in text.splitlines()
               if line.startswith("nameserver") and len(line.split()) > 1]
    if servers and all(s.startswith("127.") for s in servers):
        return read("/run/systemd/resolve/resolv.conf") or text
    return text


def write_pod_files(data_dir: str, pod: dict, hostname: str, pod_ip: str | None,
                    shape: SandboxShape) -> dict[str, str]:
    """Write hosts, hostname and resolv.conf into the pod directory; return
    their paths by the container path they are mounted at."""
    spec = pod["spec"]
    host_resolv = read_host_resolv_conf()
    files = {
        "/etc/hosts": ("etc-hosts", hosts_file(hostname, pod_ip, spec.get("subdomain"),
                                               pod["metadata"]["namespace"], spec.get("hostAliases"))),
        "/etc/hostname": ("hostname", hostname + "\n"),
        "/etc/resolv.conf": ("resolv.conf", resolv_conf(host_resolv, spec.get("dnsPolicy", "ClusterFirst"),
                                                        spec.get("dnsConfig"), shape.net)),
    }
    paths = {}
    for target, (name, content) in files.items():
        path = os.path.join(data_dir, name)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, 0o644)
        paths[target] = path
    return paths


def pause_plan(pause_binary: str, shape: SandboxShape, hostname: str,
               cgroup_procs: list[str], devnull_fd: int, sysctls: list | None = None) -> Plan:
    """Start the pause process: create the pod's namespaces, join the pod's
    cgroup, name the host, bring loopback up, set the pod's sysctls, and exec
    the tiny native program.

    The cgroup is joined after the clone, by the pause itself: on cgroup v1
    the first move into a cgroup waits for an RCU grace period (~16 ms
    here), and the namespaces exist meanwhile, so the supervisor can wire
    the pod's network into them (``Spawning.clone_pid``). Nothing runs in
    the pod before the pause is in its cgroup: the containers start later.

    The sysctls (``securityContext.sysctls``, validated as namespaced) are
    written by the pause child after its clone: /proc/sys/net and the IPC
    sysctls act on the namespaces of the writer, which are now the pod's."""
    plan = Plan(keep_fds=[devnull_fd])
    plan.add(Clone(shape.clone_flags))
    plan.add(*[WriteFile(path, "0") for path in cgroup_procs])
    if shape.uts:
        plan.add(SetHostname(hostname))
    if shape.net:
        plan.add(LinkUp("lo"))
    for sysctl in sysctls or []:
        plan.add(WriteFile(proc_path(sysctl["name"]), str(sysctl["value"])))
    plan.add(Dup2(devnull_fd, 0), Dup2(devnull_fd, 1), Dup2(devnull_fd, 2))
    plan.add(Exec(pause_binary, ("minipod-pause",), ()))
    return plan


def namespace_inodes(pid: int, names=("net", "ipc", "uts", "pid", "mnt", "cgroup")) -> dict[str, int]:
    """The inode of each namespace of ``pid``: equal inodes mean a shared
    namespace, which is how ``inspect`` shows what a pod shares."""
    out = {}
    for ns in names:
        try:
            out[ns] = os.stat(f"/proc/{pid}/ns/{ns}").st_ino
        except OSError:
            pass
    return out
