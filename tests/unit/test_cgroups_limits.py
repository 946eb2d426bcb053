"""Resource limits: Kubernetes resources -> the cgroup files kubelet writes,
the QoS class, and the writes and reads on a simulated cgroupfs (no root)."""

import copy
import errno
import os

import pytest

from minipod.cgroups import HYBRID, LEGACY, UNIFIED, Layout, open_pod_cgroup
from minipod.cgroups.limits import (BEST_EFFORT, BURSTABLE, GUARANTEED, CgroupWrite, cpu_quota, cpu_shares,
                                    container_limits, memory_bytes, milli_cpu, pod_limits, qos_class,
                                    shares_to_weight)
from minipod.config import DEFAULT_POD_PIDS_LIMIT, Config
from minipod.errors import CgroupError, MinipodError, SpecError
from minipod.spec import load_manifest
from minipod.stats import _container_entry, table

from test_cgroups_tree import FakeCgroupFS, install

UNLIMITED_V1 = "9223372036854771712"


def res(limits=None, requests=None):
    out = {}
    if limits is not None:
        out["limits"] = limits
    if requests is not None:
        out["requests"] = requests
    return out


def pod_spec(*resources, init=(), sidecars=()):
    spec = {"containers": [{"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)]}
    inits = [{"name": f"i{i}", "image": "x", "resources": r} for i, r in enumerate(init)]
    inits += [{"name": f"s{i}", "image": "x", "restartPolicy": "Always", "resources": r}
              for i, r in enumerate(sidecars)]
    if inits:
        spec["initContainers"] = inits
    return spec


def as_dict(writes):
    return {(w.controller, w.file): w.value for w in writes}


# -- kubelet's conversions ------------------------------------------------------------------

@pytest.mark.parametrize("quantity, milli", [
    ("250m", 250), ("1", 1000), (1, 1000), (0.5, 500), ("1.5", 1500), ("1e-1", 100), ("2e3", 2000000),
    ("0.0001", 1),  # rounded up, as Quantity.MilliValue() does
    ("100.5m", 101), ("0", 0),
])
def test_milli_cpu(quantity, milli):
    assert milli_cpu(quantity) == milli


@pytest.mark.parametrize("quantity, nbytes", [
    ("20Mi", 20 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("128974848", 128974848), ("129e6", 129 * 10**6),
    ("1.5", 2), ("500m", 1), ("1k", 1000), (0, 0),
])
def test_memory_bytes(quantity, nbytes):
    assert memory_bytes(quantity) == nbytes


@pytest.mark.parametrize("milli, shares", [
    (0, 2), (1, 2), (2, 2), (100, 102), (250, 256), (1000, 1024), (1500, 1536), (256000, 262144), (300000, 262144),
])
def test_cpu_shares(milli, shares):
    assert cpu_shares(milli) == shares


@pytest.mark.parametrize("milli, quota", [
    (0, None), (1, 1000), (9, 1000), (10, 1000), (11, 1100), (200, 20000), (1000, 100000), (2500, 250000),
    (10**15, None),  # beyond what the kernel accepts: no limit rather than a failure
])
def test_cpu_quota(milli, quota):
    assert cpu_quota(milli) == quota


@pytest.mark.parametrize("shares, weight", [(2, 1), (102, 4), (1024, 39), (2048, 79), (262144, 10000)])
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


# -- containers -----------------------------------------------------------------------------

def test_v1_container_with_requests_and_limits():
    writes = container_limits(res({"cpu": "500m", "memory": "128Mi"}, {"cpu": "250m", "memory": "64Mi"}), "hybrid")
    assert writes == [
        CgroupWrite("cpu", "cpu.shares", "256"),
        CgroupWrite("cpu", "cpu.cfs_period_us", "100000"),
        CgroupWrite("cpu", "cpu.cfs_quota_us", "50000"),
        CgroupWrite("memory", "memory.limit_in_bytes", str(128 * 2**20)),
        CgroupWrite("memory", "memory.memsw.limit_in_bytes", str(128 * 2**20)),
    ]


def test_v2_container_with_requests_and_limits():
    writes = container_limits(res({"cpu": "500m", "memory": "128Mi"}, {"cpu": "250m", "memory": "64Mi"}), "unified")
    assert writes == [
        CgroupWrite("cpu", "cpu.weight", "10"),
        CgroupWrite("cpu", "cpu.max", "50000 100000"),
        CgroupWrite("memory", "memory.max", str(128 * 2**20)),
        CgroupWrite("memory", "memory.swap.max", "0"),
        CgroupWrite("memory", "memory.low", str(64 * 2**20)),
    ]


def test_requests_default_to_limits():
    only_limits = container_limits(res({"cpu": "200m", "memory": "20Mi"}), "v2")
    both = container_limits(res({"cpu": "200m", "memory": "20Mi"}, {"cpu": "200m", "memory": "20Mi"}), "v2")
    assert only_limits == both
    assert as_dict(only_limits)[("cpu", "cpu.weight")] == str(shares_to_weight(204))
    assert as_dict(container_limits(res({"cpu": "200m"}), "v1"))[("cpu", "cpu.shares")] == "204"


def test_requests_only_set_shares_and_memory_low_but_no_limit():
    v1 = as_dict(container_limits(res(requests={"cpu": "1", "memory": "1Gi"}), "v1"))
    assert v1 == {("cpu", "cpu.shares"): "1024"}  # memory requests have no v1 file
    v2 = as_dict(container_limits(res(requests={"cpu": "1", "memory": "1Gi"}), "v2"))
    assert v2 == {("cpu", "cpu.weight"): "39", ("memory", "memory.low"): str(2**30)}


@pytest.mark.parametrize("resources", [None, {}, res({}, {}), res({"ephemeral-storage": "1Gi"}),
                                       res({"cpu": "0", "memory": "0"})])
def test_no_cpu_or_memory_means_minimum_shares_only(resources):
    assert container_limits(resources, "legacy") == [CgroupWrite("cpu", "cpu.shares", "2")]
    assert container_limits(resources, "v2") == [CgroupWrite("cpu", "cpu.weight", "1")]


def test_explicit_zero_request_stays_zero():
    writes = as_dict(container_limits(res({"cpu": "1"}, {"cpu": "0"}), "v1"))
    assert writes[("cpu", "cpu.shares")] == "2"
    assert writes[("cpu", "cpu.cfs_quota_us")] == "100000"


def test_unknown_layout_kind_is_an_error():
    with pytest.raises(CgroupError, match="unknown cgroup layout"):
        container_limits({}, "v3")


# -- pods -----------------------------------------------------------------------------------

def test_pod_limits_are_the_sums_when_every_container_sets_them():
    spec = pod_spec(res({"cpu": "200m", "memory": "20Mi"}), res({"cpu": "300m", "memory": "30Mi"}, {"cpu": "100m"}))
    assert as_dict(pod_limits(spec, "hybrid", 4096)) == {
        ("cpu", "cpu.shares"): str(cpu_shares(300)),
        ("cpu", "cpu.cfs_period_us"): "100000",
        ("cpu", "cpu.cfs_quota_us"): "50000",
        ("memory", "memory.limit_in_bytes"): str(50 * 2**20),
        ("memory", "memory.memsw.limit_in_bytes"): str(50 * 2**20),
        ("pids", "pids.max"): "4096",
    }


def test_pod_limit_only_for_what_every_container_limits():
    spec = pod_spec(res({"cpu": "200m", "memory": "20Mi"}), res({"cpu": "300m"}))
    writes = as_dict(pod_limits(spec, "v2", 100))
    assert writes[("cpu", "cpu.max")] == "50000 100000"
    assert ("memory", "memory.max") not in writes
    # the memory requests still add up to the pod's protection on v2
    assert writes[("memory", "memory.low")] == str(20 * 2**20)
    assert writes[("pids", "pids.max")] == "100"


def test_best_effort_pod_gets_minimum_shares_and_pids_only():
    assert pod_limits(pod_spec({}, {}), "v1", 4096) == [CgroupWrite("cpu", "cpu.shares", "2"),
                                                        CgroupWrite("pids", "pids.max", "4096")]
    assert pod_limits(pod_spec({}), "v2", 0) == [CgroupWrite("cpu", "cpu.weight", "1")]
    assert pod_limits(pod_spec({}), "v2", None) == [CgroupWrite("cpu", "cpu.weight", "1")]


def test_init_containers_count_as_kubelet_counts_them():
    # An init container runs alone: the pod needs max(sum of apps, biggest init).
    spec = pod_spec(res({"cpu": "100m", "memory": "10Mi"}), res({"cpu": "100m", "memory": "10Mi"}),
                    init=[res({"cpu": "500m", "memory": "5Mi"})])
    writes = as_dict(pod_limits(spec, "v1"))
    assert writes[("cpu", "cpu.cfs_quota_us")] == "50000"
    assert writes[("memory", "memory.limit_in_bytes")] == str(20 * 2**20)
    assert ("pids", "pids.max") not in writes


def test_sidecars_run_alongside_and_add_up():
    spec = pod_spec(res({"cpu": "100m", "memory": "10Mi"}),
                    init=[res({"cpu": "150m", "memory": "10Mi"})], sidecars=[res({"cpu": "100m", "memory": "5Mi"})])
    writes = as_dict(pod_limits(spec, "v1"))
    assert writes[("cpu", "cpu.cfs_quota_us")] == "20000"  # app + sidecar (the init ran before the sidecar)
    assert writes[("memory", "memory.limit_in_bytes")] == str(15 * 2**20)


def test_an_init_container_without_limits_leaves_the_pod_unlimited():
    spec = pod_spec(res({"cpu": "100m", "memory": "10Mi"}), init=[{}])
    writes = as_dict(pod_limits(spec, "v1"))
    assert ("cpu", "cpu.cfs_quota_us") not in writes
    assert ("memory", "memory.limit_in_bytes") not in writes


def test_pod_quota_never_below_a_container_quota():
    # 1m each is 1000 µs (the minimum) per container; the pod's 2m is also
    # raised to 1000 µs, so no child asks for more than its parent (v1 refuses that).
    spec = pod_spec(res({"cpu": "1m", "memory": "1Mi"}), res({"cpu": "1m", "memory": "1Mi"}))
    pod_quota = int(as_dict(pod_limits(spec, "v1"))[("cpu", "cpu.cfs_quota_us")])
    container_quota = int(as_dict(container_limits(spec["containers"][0]["resources"], "v1"))[("cpu", "cpu.cfs_quota_us")])
    assert pod_quota >= container_quota == 1000


# -- QoS ------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, qos", [
    (pod_spec({}), BEST_EFFORT),
    (pod_spec(res({"ephemeral-storage": "1Gi"})), BEST_EFFORT),
    (pod_spec(res(requests={"cpu": "0"})), BEST_EFFORT),
    (pod_spec(res({"cpu": "1", "memory": "1Gi"})), GUARANTEED),
    (pod_spec(res({"cpu": "1", "memory": "1Gi"}, {"cpu": "1000m", "memory": "1073741824"})), GUARANTEED),
    (pod_spec(res({"cpu": "1", "memory": "1Gi"}), res({"cpu": "2", "memory": "2Gi"})), GUARANTEED),
    (pod_spec(res({"cpu": "1", "memory": "1Gi"}, {"cpu": "500m"})), BURSTABLE),
    (pod_spec(res({"cpu": "1"})), BURSTABLE),
    (pod_spec(res(requests={"memory": "1Mi"})), BURSTABLE),
    (pod_spec(res({"cpu": "1", "memory": "1Gi"}), {}), BURSTABLE),
    (pod_spec(res({"cpu": "1", "memory": "1Gi"}), init=[{}]), BURSTABLE),
    (pod_spec(res({"cpu": "1", "memory": "1Gi"}), init=[res({"cpu": "1", "memory": "1Gi"})]), GUARANTEED),
    (pod_spec(res({"cpu": "1", "memory": "1Gi", "example.com/gpu": 1})), GUARANTEED),
])
def test_qos_class(spec, qos):
    assert qos_class(spec) == qos


def test_qos_is_the_same_before_and_after_the_spec_defaults():
    # The API server's defaulting copies limits into requests; the mapping
    # does the same on its own, so both give one answer.
    raw = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
           "spec": {"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                                   {"name": "b", "image": "x", "resources": {"limits": {"cpu": "200m"},
                                                                             "requests": {"memory": "1Mi"}}}]}}
    defaulted = load_manifest(copy.deepcopy(raw)).pods[0]["spec"]
    assert defaulted["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert qos_class(raw["spec"]) == qos_class(defaulted) == BURSTABLE
    for i in range(2):
        for kind in ("v1", "v2"):
            assert container_limits(raw["spec"]["containers"][i]["resources"], kind) == \
                container_limits(defaulted["containers"][i]["resources"], kind)


# -- validation (field paths) ------------------------------------------------------------------

def _problems(resources, where="containers"):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
           "spec": {"containers": [{"name": "a", "image": "x"}]}}
    if where == "initContainers":
        pod["spec"]["initContainers"] = [{"name": "i", "image": "x", "resources": resources}]
    else:
        pod["spec"]["containers"][0]["resources"] = resources
    with pytest.raises(SpecError) as info:
        load_manifest(pod)
    return info.value.problems


def test_request_above_limit_is_an_error_with_its_field_path():
    assert _problems(res({"memory": "64Mi"}, {"memory": "1Gi"})) == [
        "spec.containers[0].resources.requests[memory]: must be less than or equal to memory limit of 64Mi"]
    assert _problems(res({"cpu": "100m"}, {"cpu": "0.2"}), "initContainers") == [
        "spec.initContainers[0].resources.requests[cpu]: must be less than or equal to cpu limit of 100m"]


@pytest.mark.parametrize("value, message", [
    ("1.2.3", 'spec.containers[0].resources.limits[memory]: "1.2.3" is not a quantity'),
    ("20MB", 'spec.containers[0].resources.limits[memory]: "20MB" is not a quantity: unknown suffix "MB"'),
    ("-1Mi", "spec.containers[0].resources.limits[memory]: must be greater than or equal to 0"),
    (True, "spec.containers[0].resources.limits[memory]"),
])
def test_bad_quantities_are_errors_with_their_field_path(value, message):
    problems = _problems(res({"memory": value}))
    assert len(problems) == 1 and problems[0].startswith(message), problems


# -- writes on a simulated cgroupfs --------------------------------------------------------------

class LimitsFS(FakeCgroupFS):
    """The fake cgroupfs, with the interface files limits and stats use."""

    def __init__(self, base, kind, swap_accounting=True, **kwargs):
        self.swap_accounting = swap_accounting
        super().__init__(base, kind, **kwargs)

    def mkdir(self, path):
        super().mkdir(path)
        files = {}
        if self.kind == UNIFIED:
            files["cpu.stat"] = "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"
            offered = open(os.path.join(path, "cgroup.controllers")).read().split()
            if "cpu" in offered:
                files.update({"cpu.weight": "100\n", "cpu.max": "max 100000\n",
                              "cpu.stat": files["cpu.stat"] + "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"})
            if "memory" in offered:
                files.update({"memory.max": "max\n", "memory.low": "0\n", "memory.current": "0\n",
                              "memory.stat": "anon 0\ninactive_file 0\n"})
                if self.swap_accounting:
                    files["memory.swap.max"] = "max\n"
            if "pids" in offered:
                files.update({"pids.max": "max\n", "pids.current": "0\n"})
        else:
            ctrl = self._controller_of(path)
            if ctrl == "cpu":
                files.update({"cpu.shares": "1024\n", "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n",
                              "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"})
            elif ctrl == "cpuacct":
                files["cpuacct.usage"] = "0\n"
            elif ctrl == "memory":
                files.update({"memory.limit_in_bytes": UNLIMITED_V1 + "\n", "memory.usage_in_bytes": "0\n",
                              "memory.stat": "cache 0\ntotal_inactive_file 0\n"})
                if self.swap_accounting:
                    files["memory.memsw.limit_in_bytes"] = UNLIMITED_V1 + "\n"
            elif ctrl == "pids":
                files.update({"pids.max": "max\n", "pids.current": "0\n"})
        self._files(path, files)

    def set(self, cgroup, controller, name, text):
        """What the kernel would have counted meanwhile."""
        with open(os.path.join(cgroup.controller_dir(controller), name), "w") as f:
            f.write(text)


@pytest.fixture(params=[HYBRID, LEGACY, UNIFIED])
def limfs(request, tmp_path, monkeypatch):
    return install(LimitsFS(tmp_path / "cg", request.param), monkeypatch)


def read(cgroup, controller, name):
    with open(os.path.join(cgroup.controller_dir(controller), name)) as f:
        return f.read().strip()


def made_pod(fake):
    pod = open_pod_cgroup("minipod", "pod-1", layout=fake.layout)
    pod.create()
    return pod


def test_apply_writes_every_value_in_order(limfs):
    pod = made_pod(limfs)
    app = pod.child("app")
    app.create()
    writes = container_limits(res({"cpu": "200m", "memory": "20Mi"}, {"cpu": "100m"}), limfs.layout.kind)
    del limfs.writes[:]
    assert app.apply(writes) == []
    for w in writes:
        assert read(app, w.controller, w.file) == w.value
    assert [(os.path.basename(p), v) for p, v in limfs.writes] == [(w.file, w.value) for w in writes]
    assert all(os.path.dirname(p) == app.controller_dir(w.controller) for (p, _), w in zip(limfs.writes, writes))


def test_apply_pod_limits(limfs):
    pod = made_pod(limfs)
    spec = pod_spec(res({"cpu": "200m", "memory": "20Mi"}))
    assert pod.apply(pod_limits(spec, limfs.layout.kind, 64)) == []
    assert read(pod, "pids", "pids.max") == "64"
    memory_file = "memory.max" if limfs.layout.kind == UNIFIED else "memory.limit_in_bytes"
    assert read(pod, "memory", memory_file) == str(20 * 2**20)


def test_apply_again_on_a_restart_writes_the_same(limfs):
    app = made_pod(limfs).child("app")
    app.create()
    writes = container_limits(res({"cpu": "1", "memory": "1Gi"}), limfs.layout.kind)
    assert app.apply(writes) == app.apply(writes) == []
    assert all(read(app, w.controller, w.file) == w.value for w in writes)


def test_no_swap_accounting_is_not_a_warning(tmp_path, monkeypatch, caplog):
    for kind in (HYBRID, UNIFIED):
        fake = install(LimitsFS(tmp_path / kind, kind, swap_accounting=False), monkeypatch)
        app = made_pod(fake).child("app")
        app.create()
        assert app.apply(container_limits(res({"memory": "20Mi"}), kind)) == []
    assert "not enforced" not in caplog.text


def test_v2_controller_not_delegated_is_one_warning_and_the_rest_is_written(tmp_path, monkeypatch, caplog):
    fake = install(LimitsFS(tmp_path / "cg", UNIFIED, v2_controllers="memory pids"), monkeypatch)
    app = made_pod(fake).child("app")
    app.create()
    warnings = app.apply(container_limits(res({"cpu": "200m", "memory": "20Mi"}), "v2"))
    assert warnings == ["cgroup /minipod/pod-1/app: not enforced: cpu.weight=8, cpu.max=20000 100000 "
                        "(the host's cgroup2 tree offers no cpu controller)"]
    assert caplog.records[-1].name == "minipod.cgroups" and caplog.records[-1].levelname == "WARNING"
    assert warnings[0] in caplog.text
    assert read(app, "memory", "memory.max") == str(20 * 2**20)


def test_v2_controller_offered_but_not_enabled_says_so(tmp_path, monkeypatch):
    fake = install(LimitsFS(tmp_path / "cg", UNIFIED), monkeypatch)
    pod = made_pod(fake)
    app = pod.child("app")
    app.create()
    # Someone disabled pids for the pod's children (or the parent never delegated it).
    fake.write(os.path.join(pod.controller_dir("pids"), "cgroup.subtree_control"), "-pids")
    os.unlink(os.path.join(app.controller_dir("pids"), "pids.max"))
    [warning] = pod.child("app").apply([CgroupWrite("pids", "pids.max", "10")])
    assert warning.endswith("(the pids controller is not delegated to /minipod/pod-1's children)")


def test_v1_hierarchy_not_mounted_is_a_warning(tmp_path, monkeypatch):
    fake = install(LimitsFS(tmp_path / "cg", LEGACY), monkeypatch)
    del fake.layout.mounts["pids"]
    pod = made_pod(fake)
    warnings = pod.apply(pod_limits(pod_spec({}), "v1", 100))
    assert warnings == ["cgroup /minipod/pod-1: not enforced: pids.max=100 (no cgroup v1 pids hierarchy is mounted)"]
    assert read(pod, "cpu", "cpu.shares") == "2"


def test_several_missing_controllers_make_one_warning(tmp_path, monkeypatch):
    fake = install(LimitsFS(tmp_path / "cg", UNIFIED, v2_controllers=""), monkeypatch)
    pod = made_pod(fake)
    warnings = pod.apply(pod_limits(pod_spec(res({"cpu": "1", "memory": "1Mi"})), "v2", 10))
    assert len(warnings) == 1
    for text in ("cpu.max=100000 100000", "memory.max=1048576", "pids.max=10", "no cpu controller",
                 "no memory controller", "no pids controller"):
        assert text in warnings[0]


def test_a_refused_value_is_an_error_naming_file_and_cgroup(limfs, monkeypatch):
    app = made_pod(limfs).child("app")
    app.create()

    def refuse(path, text):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)

    monkeypatch.setattr("minipod.cgroups.fs.write", refuse)
    with pytest.raises(CgroupError, match=r"set cpu\.\w+ to \d+ in .*/minipod/pod-1/app: Invalid argument"):
        app.apply(container_limits({}, limfs.layout.kind))


def test_apply_to_a_cgroup_not_made_is_an_error(limfs):
    app = made_pod(limfs).child("app")
    with pytest.raises(CgroupError, match="does not exist"):
        app.apply(container_limits({}, limfs.layout.kind))


# -- OOM counter and stats ---------------------------------------------------------------------

def test_oom_killed_since_a_baseline(limfs):
    app = made_pod(limfs).child("app")
    app.create()
    events = "memory.events" if limfs.layout.kind == UNIFIED else "memory.oom_control"
    limfs.set(app, "memory", events, "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert app.oom_kills() == 1
    assert app.oom_killed() and app.oom_killed(since=0)
    # A restarted container that then exits normally is not OOMKilled again.
    assert not app.oom_killed(since=1)
    limfs.set(app, "memory", events, "oom_kill 2\n")
    assert app.oom_killed(since=1)


def test_stats_v1(tmp_path, monkeypatch):
    fake = install(LimitsFS(tmp_path / "cg", HYBRID), monkeypatch)
    app = made_pod(fake).child("app")
    app.create()
    fake.set(app, "cpuacct", "cpuacct.usage", "1500000000\n")
    fake.set(app, "cpu", "cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 2000000\n")
    fake.set(app, "memory", "memory.usage_in_bytes", "10485760\n")
    fake.set(app, "memory", "memory.stat", "cache 4096\ninactive_file 1\ntotal_inactive_file 2097152\n")
    fake.set(app, "pids", "pids.current", "3\n")
    assert app.stats() == {
        "cpu_usage_ns": 1500000000, "cpu_periods": 10, "cpu_throttled_periods": 4, "cpu_throttled_ns": 2000000,
        "memory_usage_bytes": 10485760, "memory_working_set_bytes": 8388608, "memory_limit_bytes": None,
        "pids": 3,
    }
    fake.set(app, "memory", "memory.limit_in_bytes", "20971520\n")
    fake.set(app, "memory", "memory.stat", "total_inactive_file 99999999\n")
    stats = app.stats()
    assert stats["memory_limit_bytes"] == 20971520
    assert stats["memory_working_set_bytes"] == 0  # never negative


def test_stats_v2(tmp_path, monkeypatch):
    fake = install(LimitsFS(tmp_path / "cg", UNIFIED), monkeypatch)
    app = made_pod(fake).child("app")
    app.create()
    fake.set(app, "cpu", "cpu.stat", "usage_usec 1500000\nuser_usec 1\nsystem_usec 2\n"
                                     "nr_periods 10\nnr_throttled 4\nthrottled_usec 2000\n")
    fake.set(app, "memory", "memory.current", "10485760\n")
    fake.set(app, "memory", "memory.stat", "anon 1\ninactive_file 2097152\n")
    fake.set(app, "memory", "memory.max", "20971520\n")
    fake.set(app, "pids", "pids.current", "3\n")
    assert app.stats() == {
        "cpu_usage_ns": 1500000000, "cpu_periods": 10, "cpu_throttled_periods": 4, "cpu_throttled_ns": 2000000,
        "memory_usage_bytes": 10485760, "memory_working_set_bytes": 8388608, "memory_limit_bytes": 20971520,
        "pids": 3,
    }


def test_stats_without_controllers_are_none(tmp_path, monkeypatch):
    fake = install(LimitsFS(tmp_path / "cg", UNIFIED, v2_controllers=""), monkeypatch)
    app = made_pod(fake).child("app")
    app.create()
    stats = app.stats()
    assert stats["cpu_usage_ns"] == 0  # cpu.stat's usage is always there on v2
    assert {k for k, v in stats.items() if v is None} == {
        "cpu_periods", "cpu_throttled_periods", "cpu_throttled_ns", "memory_usage_bytes",
        "memory_working_set_bytes", "memory_limit_bytes", "pids"}


def test_container_entry_cpu_is_usage_over_the_window():
    before = dict.fromkeys(("cpu_usage_ns", "cpu_periods", "cpu_throttled_periods", "cpu_throttled_ns",
                            "memory_usage_bytes", "memory_working_set_bytes", "memory_limit_bytes", "pids"), 0)
    now = dict(before, cpu_usage_ns=100_000_000, memory_working_set_bytes=5 * 2**20, memory_limit_bytes=20 * 2**20,
               pids=2, cpu_throttled_periods=3)
    entry = _container_entry("app", before, now, 500_000_000)
    assert entry["cpuCores"] == 0.2
    assert entry["memory"] == {"workingSetBytes": 5 * 2**20, "usageBytes": 0, "limitBytes": 20 * 2**20}
    assert entry["cpu"]["throttledPeriods"] == 3
    assert table([{"namespace": "default", "name": "web", "containers": [entry]},
                  {"namespace": "team", "name": "db", "containers": [
                      _container_entry("x", dict(before, cpu_usage_ns=None), dict(now, memory_limit_bytes=None), 1)]}]) == [
        ["POD", "CONTAINER", "CPU(cores)", "MEMORY(bytes)", "MEMORY LIMIT", "PIDS"],
        ["web", "app", "200m", "5Mi", "20Mi", "2"],
        ["team/db", "x", "-", "5Mi", "-", "2"],
    ]


# -- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, limit", [(None, DEFAULT_POD_PIDS_LIMIT), ("", DEFAULT_POD_PIDS_LIMIT), ("100", 100),
                                         (" 7 ", 7), ("0", 0), ("-1", 0), ("max", 0)])
def test_pod_pids_limit_from_the_environment(monkeypatch, text, limit):
    if text is None:
        monkeypatch.delenv("MINIPOD_POD_PIDS_LIMIT", raising=False)
    else:
        monkeypatch.setenv("MINIPOD_POD_PIDS_LIMIT", text)
    config = Config.from_env()
    assert config.pod_pids_limit == limit
    assert Config.from_dict(config.to_dict()).pod_pids_limit == limit  # what the supervisor gets


def test_bad_pod_pids_limit_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("MINIPOD_POD_PIDS_LIMIT", "lots")
    with pytest.raises(MinipodError, match='MINIPOD_POD_PIDS_LIMIT: "lots" is not a number'):
        Config.from_env()


def test_layout_kinds_name_the_same_versions():
    resources = res({"cpu": "1"})
    assert container_limits(resources, "v1") == container_limits(resources, HYBRID) == \
        container_limits(resources, LEGACY)
    assert container_limits(resources, "v2") == container_limits(resources, UNIFIED)
    assert Layout(kind=UNIFIED).kind == "unified"
