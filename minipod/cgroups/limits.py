"""From Kubernetes ``resources`` to the cgroup files kubelet would write.

Pure functions over a pod spec (defaults filled in or not): no file is read
or written here, so every mapping is testable without root. ``Cgroup.apply``
writes the result.

=========================  ==================================  ==========================================
Kubernetes                 cgroup v1                           cgroup v2
=========================  ==================================  ==========================================
limits.memory              memory.limit_in_bytes (+ memsw)     memory.max (+ memory.swap.max 0)
limits.cpu                 cpu.cfs_period_us 100000,           cpu.max "<quota> 100000"
                           cpu.cfs_quota_us <quota>
requests.cpu               cpu.shares (2 without a request)    cpu.weight (from the shares)
requests.memory            -                                   memory.low
pod: pids                  pids.max                            pids.max
pod: sum of limits         the same files, on the pod cgroup, only when every container sets that limit
=========================  ==================================  ==========================================

``quota = max(1000, milliCPU * 100)``, ``shares = clamp(milliCPU * 1024 /
1000, 2, 262144)``, ``weight = 1 + (shares - 2) * 9999 / 262142``: the
integer arithmetic of kubelet (pkg/kubelet/cm/helpers_linux.go) and of
runc's shares-to-weight conversion. A request missing where a limit is set
is the limit, as the API server defaults it.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import CgroupError
from ..spec.sidecars import is_sidecar

# kubelet's constants.
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
CFS_PERIOD_US = 100000
MIN_CFS_QUOTA_US = 1000
# The kernel refuses a larger quota (max_cfs_runtime, ~203 days per period):
# a limit that high limits nothing, so it is left unlimited instead of failing.
MAX_CFS_QUOTA_US = 2**44 - 1
# memory.max / limit_in_bytes above this read back as "unlimited" anyway.
MAX_MEMORY_BYTES = 2**63 - 1

GUARANTEED, BURSTABLE, BEST_EFFORT = "Guaranteed", "Burstable", "BestEffort"
# Only these resources decide the QoS class and get a cgroup file.
_COMPUTE = ("cpu", "memory")
# Written only where the kernel has them: swap accounting can be compiled
# out or disabled (swapaccount=0), and then there is no swap to limit.
OPTIONAL_FILES = frozenset({"memory.memsw.limit_in_bytes", "memory.swap.max"})


class CgroupWrite(NamedTuple):
    """One cgroup file and the value written to it, e.g.
    ``CgroupWrite("memory", "memory.max", "20971520")``."""

    controller: str
    file: str
    value: str


def cgroup_version(layout_kind: str) -> str:
    """"v1" or "v2" from a layout kind (unified, hybrid, legacy) or a
    ``Cgroup.kind`` (v1, v2)."""
    if layout_kind in ("v2", "unified"):
        return "v2"
    if layout_kind in ("v1", "hybrid", "legacy"):
        return "v1"
    raise CgroupError(f"unknown cgroup layout {layout_kind!r}")


# -- quantities ---------------------------------------------------------------------------

def _quantity(value):
    """The exact value of a quantity the validator already accepted; None
    for anything else (a pod spec that skipped validation limits nothing
    rather than crash the supervisor)."""
    from ..spec.quantity import parse_quantity

    try:
        q = parse_quantity(value)
    except ValueError:
        return None
    return q if q > 0 else None


def _ceil(value) -> int:
    # Quantity.MilliValue() and Value() round up: 0.1m of CPU is 1m, 1.5 bytes is 2.
    return -(-value.numerator // value.denominator)


def _amounts(resources) -> tuple[dict, dict]:
    """(requests, limits) of the compute resources, as positive Fractions.
    A request that is not given is the limit (the API server's default);
    zero means not set, as for kubelet."""
    resources = resources if isinstance(resources, dict) else {}
    limits_in = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
    requests_in = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
    limits, requests = {}, {}
    for name in _COMPUTE:
        if name in limits_in:
            value = _quantity(limits_in[name])
            if value is not None:
                limits[name] = value
        raw = requests_in[name] if name in requests_in else limits_in.get(name)
        value = _quantity(raw) if raw is not None else None
        if value is not None:
            requests[name] = value
    return requests, limits


def milli_cpu(value) -> int:
    """A CPU quantity in millicores, rounded up (``"250m"`` -> 250, ``0.5`` -> 500)."""
    q = _quantity(value)
    return _ceil(q * 1000) if q is not None else 0


def memory_bytes(value) -> int:
    """A memory quantity in bytes, rounded up (``"20Mi"`` -> 20971520)."""
    q = _quantity(value)
    return min(_ceil(q), MAX_MEMORY_BYTES) if q is not None else 0


# -- kubelet's conversions ----------------------------------------------------------------

def cpu_shares(milli: int) -> int:
    """cpu.shares for a CPU request: 1024 per core, at least 2 (also for no
    request), at most 262144."""
    if milli <= 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(milli * SHARES_PER_CPU // 1000, MAX_SHARES))


def cpu_quota(milli: int) -> int | None:
    """cfs quota in µs per 100 ms period for a CPU limit, at least 1 ms;
    None for no limit."""
    if milli <= 0:
        return None
    quota = max(milli * CFS_PERIOD_US // 1000, MIN_CFS_QUOTA_US)
    return quota if quota <= MAX_CFS_QUOTA_US else None


def shares_to_weight(shares: int) -> int:
    """cgroup v2 cpu.weight (1-10000) for v1 cpu.shares (2-262144)."""
    shares = max(MIN_SHARES, min(shares, MAX_SHARES))
    return 1 + ((shares - 2) * 9999) // 262142


def _cpu_writes(version: str, shares: int, quota: int | None) -> list[CgroupWrite]:
    if version == "v1":
        writes = [CgroupWrite("cpu", "cpu.shares", str(shares))]
        if quota is not None:
            # Period first: the kernel checks quota against the period in place.
            writes += [CgroupWrite("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US)),
                       CgroupWrite("cpu", "cpu.cfs_quota_us", str(quota))]
        return writes
    writes = [CgroupWrite("cpu", "cpu.weight", str(shares_to_weight(shares)))]
    if quota is not None:
        writes.append(CgroupWrite("cpu", "cpu.max", f"{quota} {CFS_PERIOD_US}"))
    return writes


def _memory_limit_writes(version: str, limit: int) -> list[CgroupWrite]:
    """The memory limit, and no swap beyond it (kubelet's NoSwap: on v1
    memory+swap equals the limit, on v2 swap is 0)."""
    if version == "v1":
        return [CgroupWrite("memory", "memory.limit_in_bytes", str(limit)),
                CgroupWrite("memory", "memory.memsw.limit_in_bytes", str(limit))]
    return [CgroupWrite("memory", "memory.max", str(limit)),
            CgroupWrite("memory", "memory.swap.max", "0")]


# -- containers ---------------------------------------------------------------------------

def container_limits(resources, layout_kind: str) -> list[CgroupWrite]:
    """The writes for one container's cgroup, in the order they must be
    made, from its ``resources`` (``{"limits": {...}, "requests": {...}}``).
    cpu.shares / cpu.weight is always written (2 / 1 without a request, as
    kubelet does for a best-effort container)."""
    version = cgroup_version(layout_kind)
    requests, limits = _amounts(resources)
    cpu_request = _ceil(requests["cpu"] * 1000) if "cpu" in requests else 0
    cpu_limit = _ceil(limits["cpu"] * 1000) if "cpu" in limits else 0
    writes = _cpu_writes(version, cpu_shares(cpu_request), cpu_quota(cpu_limit))
    if "memory" in limits:
        writes += _memory_limit_writes(version, min(_ceil(limits["memory"]), MAX_MEMORY_BYTES))
    if version == "v2" and "memory" in requests:
        writes.append(CgroupWrite("memory", "memory.low", str(min(_ceil(requests["memory"]), MAX_MEMORY_BYTES))))
    return writes


# -- pods ---------------------------------------------------------------------------------

def _containers(pod_spec: dict) -> tuple[list, list]:
    """(app containers, init containers) of a pod spec; ephemeral containers
    count for nothing, as in Kubernetes."""
    apps = [c for c in pod_spec.get("containers") or [] if isinstance(c, dict)]
    inits = [c for c in pod_spec.get("initContainers") or [] if isinstance(c, dict)]
    return apps, inits


def _pod_total(pod_spec: dict, amount) -> object:
    """kubelet's aggregation of one per-container amount for the whole pod:
    app containers and sidecars (restartable init containers) run together,
    so they add up; an ordinary init container runs with only the sidecars
    started before it; the pod needs the larger of the two."""
    apps, inits = _containers(pod_spec)
    total = sum((amount(c) for c in apps), 0)
    sidecars = 0
    init_peak = 0
    for c in inits:
        value = amount(c)
        if is_sidecar(c):
            total += value
            sidecars += value
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, value + sidecars)
    return max(total, init_peak)


def _all_declare(pod_spec: dict, name: str) -> bool:
    """True when every container (init containers included) has a non-zero
    ``limits[name]``."""
    apps, inits = _containers(pod_spec)
    return all(name in _amounts(c.get("resources"))[1] for c in apps + inits)


def pod_limits(pod_spec: dict, layout_kind: str, pids_limit: int | None = None) -> list[CgroupWrite]:
    """The writes for the pod's cgroup, as kubelet makes them for the pod
    level: cpu.shares from the summed requests (2 for a BestEffort pod), a
    CPU quota and a memory limit from the summed limits only when every
    container sets that limit, memory.low (v2) from the summed memory
    requests, and ``pids.max`` when ``pids_limit`` is a positive number."""
    version = cgroup_version(layout_kind)

    def request(name):
        return lambda c: _amounts(c.get("resources"))[0].get(name, 0)

    def limit(name):
        return lambda c: _amounts(c.get("resources"))[1].get(name, 0)

    qos = qos_class(pod_spec)
    cpu_request = _ceil(_pod_total(pod_spec, request("cpu")) * 1000)
    shares = MIN_SHARES if qos == BEST_EFFORT else cpu_shares(cpu_request)
    quota = None
    if qos != BEST_EFFORT and _all_declare(pod_spec, "cpu"):
        quota = cpu_quota(_ceil(_pod_total(pod_spec, limit("cpu")) * 1000))
    writes = _cpu_writes(version, shares, quota)
    if qos != BEST_EFFORT and _all_declare(pod_spec, "memory"):
        writes += _memory_limit_writes(version, min(_ceil(_pod_total(pod_spec, limit("memory"))),
                                                    MAX_MEMORY_BYTES))
    memory_request = _ceil(_pod_total(pod_spec, request("memory")))
    if version == "v2" and memory_request > 0:
        # A container's memory.low protects nothing beyond what its parent
        # is protected for, so the pod claims the sum of its containers'.
        writes.append(CgroupWrite("memory", "memory.low", str(min(memory_request, MAX_MEMORY_BYTES))))
    if pids_limit is not None and pids_limit > 0:
        writes.append(CgroupWrite("pids", "pids.max", str(pids_limit)))
    return writes


def qos_class(pod_spec: dict) -> str:
    """The pod's QoS class by Kubernetes' rules (GetPodQOS): BestEffort when
    no container requests or limits CPU or memory; Guaranteed when every
    container limits both and the pod's summed requests equal its summed
    limits for each; Burstable otherwise. Requests default to limits."""
    apps, inits = _containers(pod_spec)
    requests: dict = {}
    limits: dict = {}
    guaranteed = True
    for c in apps + inits:
        c_requests, c_limits = _amounts(c.get("resources"))
        for name, value in c_requests.items():
            requests[name] = requests.get(name, 0) + value
        for name, value in c_limits.items():
            limits[name] = limits.get(name, 0) + value
        if not all(name in c_limits for name in _COMPUTE):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and requests.keys() == limits.keys() and all(requests[n] == limits[n] for n in requests):
        return GUARANTEED
    return BURSTABLE
