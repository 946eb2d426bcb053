"""minipod: run Kubernetes Pod manifests on one Linux host.

    import minipod
    rt = minipod.Runtime()                 # or Runtime(root="/tmp/x", …)
    with rt.run("pod.yaml") as pod:
        pod.wait_ready()
        print(pod.exec("app", ["hostname"]).text)

Heavy modules load only when used, so importing minipod is cheap.
"""

from .errors import (  # noqa: F401
    CgroupError, ImageError, KernelError, MinipodError, NetworkError, NotRootError, SpawnError,
    SpecError, StateError,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Runtime":
        from .runtime import Runtime

        return Runtime
    if name == "Pod":
        from .handle import Pod

        return Pod
    raise AttributeError(f"module 'minipod' has no attribute {name!r}")
