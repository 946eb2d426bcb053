"""nft script generation and reading back a pod's rule handles."""

from __future__ import annotations

import json

from minipod.network import PodNetworkConfig, parse_host_ports
from minipod.network import nat

CFG = PodNetworkConfig(bridge="mpt-x.1", subnet="10.213.5.0/24", state_dir="/nonexistent")


def test_table_name_is_per_bridge_and_a_valid_nft_identifier():
    assert CFG.nft_table == "minipod_mpt_x_1"
    assert PodNetworkConfig(bridge="minipod0").nft_table == "minipod_minipod0"


def test_base_script_declares_table_chains_and_masquerade():
    script = nat.base_script(CFG)
    lines = script.splitlines()
    assert lines[0] == "add table inet minipod_mpt_x_1"
    assert "add chain inet minipod_mpt_x_1 prerouting { type nat hook prerouting priority dstnat; policy accept; }" in lines
    assert "add chain inet minipod_mpt_x_1 output { type nat hook output priority -100; policy accept; }" in lines
    assert "add chain inet minipod_mpt_x_1 postrouting { type nat hook postrouting priority srcnat; policy accept; }" in lines
    # the base chains are re-declared: flushed before their rules, in the same script
    for chain in ("prerouting", "output", "postrouting"):
        flush = lines.index(f"flush chain inet minipod_mpt_x_1 {chain}")
        first_rule = next(i for i, line in enumerate(lines) if line.startswith(f"add rule inet minipod_mpt_x_1 {chain} "))
        assert flush < first_rule
    assert "add rule inet minipod_mpt_x_1 prerouting fib daddr type local jump hostports" in lines
    assert "add rule inet minipod_mpt_x_1 output fib daddr type local jump hostports" in lines
    assert ('add rule inet minipod_mpt_x_1 postrouting ip saddr 10.213.5.0/24 ip daddr != 10.213.5.0/24 '
            'masquerade comment "egress"') in lines
    assert any('oifname "mpt-x.1" ip saddr 127.0.0.0/8 masquerade' in line for line in lines)
    assert any('oifname "mpt-x.1" ip saddr 10.213.5.0/24 ct status dnat masquerade' in line for line in lines)
    assert script.endswith("\n")
    # nothing outside minipod's own table is ever named
    for line in lines:
        assert " inet minipod_mpt_x_1" in line


def test_dnat_rules_per_port_with_protocol_host_ip_and_pod_comment():
    ports = parse_host_ports([
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
        {"containerPort": 9000},  # not published
    ])
    script = nat.setup_script(CFG, "default_web", "10.213.5.7", ports)
    dnat = [line for line in script.splitlines() if " dnat ip to " in line]
    assert dnat == [
        'add rule inet minipod_mpt_x_1 hostports tcp dport 8080 dnat ip to 10.213.5.7:80 comment "pod:default_web"',
        'add rule inet minipod_mpt_x_1 hostports ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.213.5.7:53'
        ' comment "pod:default_web"',
    ]
    # nft needs a newline after every dnat statement
    assert script.endswith('comment "pod:default_web"\n')


def test_pod_rule_handles_come_from_the_json_listing():
    listing = {"nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"chain": {"family": "inet", "table": "minipod_mpt_x_1", "name": "hostports", "handle": 1}},
        {"rule": {"family": "inet", "table": "minipod_mpt_x_1", "chain": "hostports", "handle": 7,
                  "comment": "pod:default_web", "expr": []}},
        {"rule": {"family": "inet", "table": "minipod_mpt_x_1", "chain": "hostports", "handle": 8,
                  "comment": "pod:default_web2", "expr": []}},
        {"rule": {"family": "inet", "table": "minipod_mpt_x_1", "chain": "hostports", "handle": 9,
                  "comment": "pod:default_web", "expr": []}},
    ]}
    assert nat.pod_rule_handles(json.dumps(listing), "default_web") == [7, 9]
    assert nat.pod_rule_handles(listing, "default_web2") == [8]
    assert nat.pod_rule_handles(listing, "default_other") == []


def test_delete_scripts():
    assert nat.delete_rules_script(CFG, [7, 9]) == (
        "delete rule inet minipod_mpt_x_1 hostports handle 7\n"
        "delete rule inet minipod_mpt_x_1 hostports handle 9\n")
    assert nat.delete_table_script(CFG) == "delete table inet minipod_mpt_x_1\n"
    assert nat.list_hostports_script(CFG) == "list chain inet minipod_mpt_x_1 hostports\n"


def test_nft_failures_read_as_one_line_and_tell_a_missing_table():
    from minipod.network.nft import NftFailure

    lib = NftFailure("list hostPort rules", "Error: No such file or directory\nlist chain inet x hostports\n"
                                            "                   ^\n")
    assert str(lib) == "nftables: list hostPort rules: No such file or directory"
    assert lib.not_found
    cmd = NftFailure("rules of pod default_web", "/dev/stdin:3:1-20: Error: Could not process rule: "
                                                 "Operation not permitted\n")
    assert str(cmd) == "nftables: rules of pod default_web: Could not process rule: Operation not permitted"
    assert not cmd.not_found
