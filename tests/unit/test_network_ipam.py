"""IPAM on files: allocation, reuse, release, exhaustion, concurrency."""

from __future__ import annotations

import ipaddress
import multiprocessing
import os

import pytest

from minipod.errors import NetworkError
from minipod.network import PodNetworkConfig, list_allocations
from minipod.network import ipam


@pytest.fixture
def cfg(tmp_path) -> PodNetworkConfig:
    return PodNetworkConfig(bridge="mptunit0", subnet="10.213.7.0/24", state_dir=str(tmp_path / "net"))


def allocate(cfg, key):
    with ipam.locked(cfg) as pool:
        return pool.allocate(key)


def release(cfg, key):
    with ipam.locked(cfg) as pool:
        return pool.release(key)


def test_first_address_follows_the_gateway_and_each_pod_gets_its_own(cfg):
    assert cfg.gateway == "10.213.7.1"
    ips = [allocate(cfg, f"default_p{i}") for i in range(5)]
    assert ips == [f"10.213.7.{i}" for i in range(2, 7)]
    assert list_allocations(cfg) == {ip: f"default_p{i}" for i, ip in enumerate(ips)}


def test_allocation_is_a_symlink_named_by_the_address(cfg):
    ip = allocate(cfg, "default_web")
    path = os.path.join(cfg.state_dir, "ipam", cfg.bridge, ip)
    assert os.path.islink(path) and os.readlink(path) == "default_web"


def test_same_pod_keeps_its_address(cfg):
    first = allocate(cfg, "default_web")
    allocate(cfg, "default_other")
    assert allocate(cfg, "default_web") == first
    assert len(list_allocations(cfg)) == 2


def test_release_frees_only_that_pod(cfg):
    a = allocate(cfg, "default_a")
    b = allocate(cfg, "default_b")
    assert release(cfg, "default_a") == [a]
    assert release(cfg, "default_a") == []
    assert list_allocations(cfg) == {b: "default_b"}


def test_a_released_address_is_not_handed_out_next(cfg):
    a = allocate(cfg, "default_a")
    release(cfg, "default_a")
    b = allocate(cfg, "default_b")
    assert b != a
    assert b == "10.213.7.3"


def test_allocation_wraps_around_and_skips_taken_addresses(tmp_path):
    cfg = PodNetworkConfig(bridge="mptunit1", subnet="10.213.8.0/29", state_dir=str(tmp_path))
    # usable: .2 .3 .4 .5 .6 (.0 network, .1 gateway, .7 broadcast)
    got = [allocate(cfg, f"ns_p{i}") for i in range(5)]
    assert got == ["10.213.8.2", "10.213.8.3", "10.213.8.4", "10.213.8.5", "10.213.8.6"]
    release(cfg, "ns_p1")
    assert allocate(cfg, "ns_new") == "10.213.8.3"


def test_full_subnet_is_a_clear_error(tmp_path):
    cfg = PodNetworkConfig(bridge="mptunit2", subnet="10.213.9.0/30", state_dir=str(tmp_path))
    assert allocate(cfg, "default_one") == "10.213.9.2"
    with pytest.raises(NetworkError, match=r"no free address left in subnet 10.213.9.0/30.*default/two"):
        allocate(cfg, "default_two")


def test_a_foreign_file_in_the_pool_keeps_its_address_taken(cfg):
    directory = ipam.ipam_dir(cfg)
    os.makedirs(directory)
    with open(os.path.join(directory, "10.213.7.2"), "w") as f:
        f.write("something else\n")
    assert allocate(cfg, "default_a") == "10.213.7.3"


def test_empty_pool_removes_its_directory(cfg):
    allocate(cfg, "default_a")
    with ipam.locked(cfg) as pool:
        assert not pool.remove_if_empty()
        pool.release("default_a")
        assert pool.remove_if_empty()
    assert not os.path.exists(ipam.ipam_dir(cfg))
    assert list_allocations(cfg) == {}


def _allocate_in_child(state_dir: str, key: str, queue) -> None:
    cfg = PodNetworkConfig(bridge="mptunit0", subnet="10.213.7.0/24", state_dir=state_dir)
    queue.put(allocate(cfg, key))


def test_twenty_processes_at_once_get_twenty_addresses(cfg):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_allocate_in_child, args=(cfg.state_dir, f"default_p{i}", queue))
             for i in range(20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    ips = [queue.get(timeout=5) for _ in procs]
    assert len(set(ips)) == 20
    assert all(ipaddress.IPv4Address(ip) in cfg.network for ip in ips)
    assert cfg.gateway not in ips
    assert sorted(list_allocations(cfg).values()) == sorted(f"default_p{i}" for i in range(20))
