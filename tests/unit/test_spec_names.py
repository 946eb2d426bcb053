"""Name checks, as Kubernetes' apimachinery does them."""

import pytest

from minipod.spec import names


@pytest.mark.parametrize("value, ok", [
    ("web", True), ("web-1", True), ("1web", True), ("a" * 63, True),
    ("", False), ("a" * 64, False), ("Web", False), ("web_1", False), ("-web", False), ("web-", False),
    ("web.v1", False),
])
def test_dns_label(value, ok):
    assert (names.dns_label_error(value) is None) == ok


@pytest.mark.parametrize("value, ok", [
    ("web", True), ("web.v1", True), ("a.b.c", True), (("a" * 63 + ".") * 3 + "a" * 61, True),
    ("", False), ("a" * 254, False), ("web..v1", False), (".web", False), ("web.", False), ("Web", False),
])
def test_dns_subdomain(value, ok):
    assert (names.dns_subdomain_error(value) is None) == ok


@pytest.mark.parametrize("value, ok", [
    ("app", True), ("App_Name.1", True), ("example.com/app", True), ("a" * 63, True),
    ("", False), ("a" * 64, False), ("/app", False), ("example.com/", False), ("a/b/c", False),
    ("-app", False), ("app-", False), ("Example.com/app", False), ("has space", False),
])
def test_qualified_name(value, ok):
    assert (names.qualified_name_error(value) is None) == ok


@pytest.mark.parametrize("value, ok", [
    ("", True), ("v1", True), ("a.b_c-D", True), ("a" * 63, True),
    ("a" * 64, False), ("-a", False), ("a b", False), ("a/b", False),
])
def test_label_value(value, ok):
    assert (names.label_value_error(value) is None) == ok


@pytest.mark.parametrize("value, ok", [
    ("http", True), ("http-alt", True), ("h2", True), ("a" * 15, True),
    ("", False), ("a" * 16, False), ("8080", False), ("HTTP", False), ("-http", False), ("http-", False),
    ("a--b", False), ("a_b", False),
])
def test_port_name(value, ok):
    assert (names.port_name_error(value) is None) == ok


@pytest.mark.parametrize("value, ok", [
    ("PATH", True), ("my.var", True), ("1ST", True), ("with space", True), ("x!@#", True),
    ("", False), ("A=B", False), ("tab\t", False), ("é", False),
])
def test_env_var_name(value, ok):
    assert (names.env_var_name_error(value) is None) == ok


@pytest.mark.parametrize("value, ok", [
    ("index.html", True), ("KEY_1", True), ("a-b", True), (".hidden", True),
    ("", False), (".", False), ("..", False), ("..data", False), ("a/b", False), ("a b", False),
])
def test_config_key(value, ok):
    assert (names.config_key_error(value) is None) == ok


@pytest.mark.parametrize("value, ok", [
    ("NET_ADMIN", True), ("CAP_NET_ADMIN", True), ("net_admin", True), ("ALL", True), ("all", True),
    ("CHECKPOINT_RESTORE", True), ("NET_ADMN", False), ("CAP_ALL", False), ("", False), ("CAP_", False),
])
def test_capability(value, ok):
    assert (names.capability_error(value) is None) == ok


def test_capability_table_matches_kernel_numbering():
    assert names.LINUX_CAPABILITIES.index("CHOWN") == 0
    assert names.LINUX_CAPABILITIES.index("SYS_ADMIN") == 21
    assert names.LINUX_CAPABILITIES.index("CHECKPOINT_RESTORE") == 40


@pytest.mark.parametrize("value, ok", [
    ("net.ipv4.ip_forward", True), ("net/ipv4/conf/eth0/rp_filter", True), ("kernel.shm_rmid_forced", True),
    ("Net.ipv4", False), ("net..ipv4", False), ("net.", False), ("", False),
])
def test_sysctl_name(value, ok):
    assert (names.sysctl_name_error(value) is None) == ok


def test_relative_paths():
    assert names.relative_path_error("a/b") is None
    assert names.relative_path_error("a/..b") is None
    assert names.relative_path_error("a/../b") is not None
    assert names.relative_path_error("/a") is not None
    assert names.relative_path_error("..data", reserved_prefix=True) is not None
    assert names.relative_path_error("..data") is None


def test_suggestion():
    assert names.suggestion("imagePullPolcy", ["image", "imagePullPolicy"]) == ' (did you mean "imagePullPolicy"?)'
    assert names.suggestion("IMAGE", ["image"]) == ' (did you mean "image"?)'
    assert names.suggestion("name", ["secretName", "items"]) == ' (did you mean "secretName"?)'
    assert names.suggestion("zzz", ["image"]) == ""
