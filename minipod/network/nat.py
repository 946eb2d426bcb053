"""The nftables rules of a bridge, as ``nft`` script text (pure functions).

Everything lives in one table per bridge, ``inet minipod_<bridge>``; minipod
never reads, flushes or edits any other table. The table holds:

* ``prerouting`` / ``output`` (nat hooks): packets addressed to one of the
  host's own addresses (``fib daddr type local``: the host's IPs, the bridge
  gateway, 127.0.0.1) jump to ``hostports``. ``prerouting`` sees traffic from
  other machines and from pods, ``output`` the host's own processes.
* ``hostports``: one DNAT rule per published port, each with the comment
  ``pod:<pod_key>``, so a pod's rules can be found and removed alone.
* ``postrouting`` (nat hook), masquerade for
  - pods talking to anything outside the subnet (egress),
  - connections to a hostPort on 127.0.0.1: their source 127.0.0.1 cannot
    leave the host, it becomes the gateway address (``route_localnet`` on
    the bridge lets the packet be routed there at all),
  - a pod reaching another pod (or itself) through a hostPort: without it
    the answer would go straight back over the bridge, bypassing the
    conntrack entry that has to undo the DNAT.

The base chains are re-declared (flush + add, in the same atomic transaction)
by every pod set-up: idempotent, self-healing, and no packet ever sees a
half-written chain.

A ``dnat to`` statement must be followed by a newline, not ``}``, in nft
scripts: every rule here is its own ``add rule`` line.
"""

from __future__ import annotations

import json

from .model import HostPort, PodNetworkConfig

HOSTPORTS = "hostports"
POD_COMMENT_PREFIX = "pod:"


def pod_comment(pod_key: str) -> str:
    return POD_COMMENT_PREFIX + pod_key


def base_script(cfg: PodNetworkConfig) -> str:
    """Create (or re-declare) the table, its chains and the shared rules."""
    t = f"inet {cfg.nft_table}"
    subnet = cfg.subnet
    bridge = cfg.bridge
    return "".join([
        f"add table {t}\n",
        f"add chain {t} {HOSTPORTS}\n",
        f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n",
        f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}\n",
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n",
        f"flush chain {t} prerouting\n",
        f"flush chain {t} output\n",
        f"flush chain {t} postrouting\n",
        f"add rule {t} prerouting fib daddr type local jump {HOSTPORTS}\n",
        f"add rule {t} output fib daddr type local jump {HOSTPORTS}\n",
        f'add rule {t} postrouting ip saddr {subnet} ip daddr != {subnet} masquerade comment "egress"\n',
        f'add rule {t} postrouting oifname "{bridge}" ip saddr 127.0.0.0/8 masquerade'
        f' comment "hostPort from localhost"\n',
        f'add rule {t} postrouting oifname "{bridge}" ip saddr {subnet} ct status dnat masquerade'
        f' comment "hostPort from a pod"\n',
    ])


def dnat_rule(cfg: PodNetworkConfig, pod_key: str, pod_ip: str, port: HostPort) -> str:
    """One hostPort: ``[hostIP:]hostPort/proto`` → ``podIP:containerPort``."""
    match = f"ip daddr {port.host_ip} " if port.host_ip else ""
    proto = port.protocol.lower()
    return (f"add rule inet {cfg.nft_table} {HOSTPORTS} {match}{proto} dport {port.host_port}"
            f" dnat ip to {pod_ip}:{port.container_port}"
            f' comment "{pod_comment(pod_key)}"\n')


def setup_script(cfg: PodNetworkConfig, pod_key: str, pod_ip: str, ports: list[HostPort]) -> str:
    """Everything a pod needs, as one transaction."""
    return base_script(cfg) + "".join(dnat_rule(cfg, pod_key, pod_ip, p) for p in ports)


def list_hostports_script(cfg: PodNetworkConfig) -> str:
    return f"list chain inet {cfg.nft_table} {HOSTPORTS}\n"


def pod_rule_handles(listing: str | dict, pod_key: str) -> list[int]:
    """Handles of ``pod_key``'s rules in the JSON listing of ``hostports``
    (``nft -j -a list chain …``)."""
    data = json.loads(listing) if isinstance(listing, str) else listing
    wanted = pod_comment(pod_key)
    handles = []
    for item in data.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if rule and rule.get("chain") == HOSTPORTS and rule.get("comment") == wanted:
            handles.append(int(rule["handle"]))
    return handles


def delete_rules_script(cfg: PodNetworkConfig, handles: list[int]) -> str:
    return "".join(f"delete rule inet {cfg.nft_table} {HOSTPORTS} handle {h}\n" for h in handles)


def delete_table_script(cfg: PodNetworkConfig) -> str:
    return f"delete table inet {cfg.nft_table}\n"
