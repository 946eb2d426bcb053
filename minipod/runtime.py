"""The sequencer: the one place that orders a pod's steps.

``run``: read and validate the manifest, resolve every image (all before
anything exists on the host) → claim the pod's name → record its spec →
start its supervisor, which builds the sandbox and starts the containers →
on a failure, undo what exists. ``stop``, ``rm`` and ``down`` walk the same
road back. The library API (``minipod.Runtime``) and the CLI both use this.
"""

from __future__ import annotations

import os
import signal
import time

from .config import Config
from .errors import MinipodError, NotRootError, StateError
from .state import PodDir, PodTable, new_uid, write_json_atomic

# How long past the grace period a stop may take: the supervisor's SIGKILL,
# the exit of what it killed, and giving back the pod's host resources.
STOP_MARGIN = 10.0
KILL_MARGIN = 3.0


def _wait_supervisor_gone(pod_dir: PodDir, pid: int, limit: float) -> bool:
    """Wait until the pod's supervisor ``pid`` has ended (its lock is free),
    or the monotonic ``limit`` passed; True if it ended. Sleeps on a pidfd
    of the supervisor, which wakes this process the moment it exits, rather
    than polling (and taking CPU time from it)."""
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # already gone
        pidfd = None
    try:
        while pod_dir.supervisor_alive():
            left = limit - time.monotonic()
            if left <= 0:
                return False
            if pidfd is not None:
                if select.select([pidfd], [], [], min(left, 0.05))[0]:
                    # That process has ended; whatever still holds the lock
                    # is looked at by polling from now on.
                    os.close(pidfd)
                    pidfd = None
            else:
                time.sleep(0.002)
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def require_root(what: str = "minipod") -> None:
    if os.geteuid() != 0:
        raise NotRootError(what)


def _creation_timestamp() -> str:
    from .podstatus import now_rfc3339

    return now_rfc3339()


def add_published_port(pod: dict, spec: str) -> None:
    """Publish a container port on the host: the container that declares the
    port gets its hostPort; an undeclared port is added to the first
    container."""
    from .errors import SpecError

    text, _, protocol = spec.partition("/")
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        host_ip = parts[0] if len(parts) == 3 else None
        host_port, container_port = int(parts[-2]), int(parts[-1])
        if not (0 < host_port < 65536 and 0 < container_port < 65536):
            raise ValueError
    except ValueError:
        raise SpecError(f"--publish {spec}: expected [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]") from None
    protocol = (protocol or "tcp").upper()
    if protocol not in ("TCP", "UDP"):
        raise SpecError(f"--publish {spec}: protocol must be tcp or udp")
    containers = pod["spec"]["containers"]
    target = None
    for c in containers:
        for port in c.get("ports") or []:
            if port["containerPort"] == container_port and port.get("protocol", "TCP") == protocol:
                target = port
    if target is None:
        target = {"containerPort": container_port, "protocol": protocol}
        containers[0].setdefault("ports", []).append(target)
    target["hostPort"] = host_port
    if host_ip:
        target["hostIP"] = host_ip


class StartReport:
    """The outcome of ``run`` for one pod: its handle and any container that
    could not start (the pod exists; its status says why)."""

    def __init__(self, pod, failures: dict[str, str]):
        self.pod = pod
        self.failures = failures


class Runtime:
    """minipod on this host. Every argument may also come from the
    environment (MINIPOD_ROOT, MINIPOD_BRIDGE, MINIPOD_SUBNET,
    MINIPOD_CGROUP_PARENT)."""

    def __init__(self, root: str | None = None, bridge: str | None = None, subnet: str | None = None,
                 cgroup_parent: str | None = None, debug: bool = False, config: Config | None = None):
        self.config = config or Config.from_env(root=root, bridge=bridge, subnet=subnet,
                                                cgroup_parent=cgroup_parent, debug=debug or None)
        self.table = PodTable(self.config)

    # ------------------------------------------------------------ manifests
    def validate(self, source):
        """Parse and check a manifest (path, text or dict); returns it with
        its warnings. Raises SpecError listing every problem."""
        from .spec import load_manifest

        return load_manifest(source)

    def _resolve_images(self, pod: dict, secrets: dict | None = None) -> dict:
        """The image of every container, pulled as its policy says, with the
        pod's imagePullSecrets (looked up in ``secrets``, the manifest's) as
        credentials."""
        from .container import ImageInfo
        from .images import ImageStore

        store = ImageStore(self.config.images_dir)
        pull_secrets = []
        if pod["spec"].get("imagePullSecrets"):  # the registry client loads only when needed
            from .images.pullsecrets import pod_pull_secrets

            pull_secrets = pod_pull_secrets(pod, secrets or {})
        spec = pod["spec"]
        found, pulled = {}, {}
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            image = pulled.get(c["image"])
            if image is None:
                image = pulled[c["image"]] = self._image_by_policy(store, c["image"],
                                                                   c.get("imagePullPolicy"), pull_secrets)
            found[c["name"]] = ImageInfo.of(image)
        return found

    def _image_by_policy(self, store, ref: str, policy: str | None, pull_secrets: list | None = None):
        """imagePullPolicy as Kubernetes means it: Never uses the store only,
        IfNotPresent pulls when the store lacks the image, Always pulls (and
        falls back to the stored copy, with a warning, when the registry
        cannot be reached). Runs before anything exists on the host."""
        from .errors import ImageError

        if policy == "Never":
            return store.resolve(ref)
        local = None
        if policy != "Always":
            try:
                return store.resolve(ref)
            except ImageError as exc:
                if "not found" not in str(exc):
                    raise
        else:
            try:
                local = store.resolve(ref)
            except ImageError:
                local = None
        from .images.pull import pull_image  # ~6 ms, paid only when an image is pulled

        try:
            return pull_image(store, ref, pull_secrets=pull_secrets)
        except ImageError as exc:
            if local is not None:
                import logging

                logging.getLogger("minipod.runtime").warning(
                    'cannot pull image "%s" (%s); using the local copy', ref, exc)
                return local
            raise ImageError(f'image "{ref}" not found locally and cannot be pulled: {exc}',
                             hint=getattr(exc, "hint", None)) from None

    # ------------------------------------------------------------ run
    def start(self, source, *, replace: bool = False, publish: list[str] = (),
              warn=None) -> list[StartReport]:
        """Create and start every Pod of a manifest (a path, text, dict or
        a validated manifest); returns one report per pod. ``publish``
        ("[IP:]HOST:CONTAINER[/PROTO]", as podman's) adds hostPorts to the
        manifest's first pod; ``warn`` is called with each warning about
        the manifest as soon as it is read."""
        early = None
        if os.geteuid() == 0:
            from .launcher import early_supervisor

            # Forked first: its imports run while this process reads the manifest.
            early = early_supervisor()
        try:
            return self._start(source, replace, publish, early, warn)
        finally:
            if early is not None:
                early.discard()  # a no-op when a pod took it

    def _start(self, source, replace: bool, publish, early, warn) -> list[StartReport]:
        manifest = source if hasattr(source, "pods") else self.validate(source)
        for warning in getattr(manifest, "warnings", []) if warn else []:
            warn(warning)
        for spec in publish:
            add_published_port(manifest.pods[0], spec)
        require_root("minipod run")
        from .seccomp_localhost import check_pod_profiles

        for pod in manifest.pods:  # before a pull: a missing or broken Localhost profile is a clear error
            check_pod_profiles(pod, self.config.seccomp_dir)
        # From the moment its layers are looked up until its spec.json names
        # them, a starting pod holds the store's writer lock: an 'image rm'
        # or 'prune' in between would not know the pod needs them.
        with self.image_store().writing():
            images = [self._resolve_images(pod, manifest.secrets) for pod in manifest.pods]
            for pod in manifest.pods:  # a taken hostPort is a clear error before anything exists
                self._check_host_ports(pod)
            if not replace:  # all or nothing: no pod starts when one name is taken
                for pod in manifest.pods:
                    meta = pod["metadata"]
                    if self.table.dir_for(meta["namespace"], meta["name"]).exists():
                        self.table.claim(meta["namespace"], meta["name"])  # raises the usual error
            reports = []
            for pod, pod_images in zip(manifest.pods, images):
                reports.append(self._start_pod(pod, pod_images, manifest, replace, early))
                early = None  # the first pod took it; the others get a supervisor of their own
        return reports

    def _check_host_ports(self, pod: dict) -> None:
        from .spec.sidecars import pod_ports

        ports = pod_ports(pod)
        if any(p.get("hostPort") for p in ports):
            from .network import PodNetworkConfig, check_host_ports

            meta = pod["metadata"]
            check_host_ports(PodNetworkConfig.from_config(self.config),
                             f"{meta['namespace']}_{meta['name']}", ports)

    def run(self, source, *, replace: bool = False):
        """Start the pods of a manifest. Returns the Pod handle when the
        manifest holds one pod, else a list of handles."""
        pods = [r.pod for r in self.start(source, replace=replace)]
        return pods[0] if len(pods) == 1 else pods

    def _start_pod(self, pod: dict, images: dict, manifest, replace: bool, early=None) -> StartReport:
        from .launcher import start_supervisor

        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if replace and self.table.dir_for(namespace, name).exists():
            self.remove(f"{namespace}/{name}", force=True)
        pod_dir = self.table.claim(namespace, name)
        uid = new_uid()
        meta["uid"] = uid
        meta["creationTimestamp"] = _creation_timestamp()
        ns_of = lambda table: [[ns, n, obj] for (ns, n), obj in table.items() if ns == namespace]  # noqa: E731
        try:
            write_json_atomic(os.path.join(pod_dir.path, "spec.json"), {
                "pod": pod, "configMaps": ns_of(manifest.config_maps), "secrets": ns_of(manifest.secrets),
                "images": {k: v.to_dict() for k, v in images.items()},
            })
            # Recorded before the supervisor exists, so `rm -f` can always
            # find what a pod may have made, whatever happens next.
            pod_dir.write({
                "version": 1, "pod": pod, "uid": uid, "phase": "Pending",
                "dataDir": os.path.join(self.config.pods_data_dir, uid),
                "logDir": os.path.join(self.config.logs_dir, f"{namespace}_{name}_{uid}"),
                "cgroupId": f"pod-{uid}", "cgroupParent": self.config.cgroup_parent,
                "bridge": self.config.bridge, "subnet": self.config.subnet,
                "containers": [],
            })
            outcome = (early.start(self.config, pod_dir) if early is not None
                       else start_supervisor(self.config, pod_dir))
        except BaseException:
            self._destroy(pod_dir)
            raise
        if not outcome.get("ok"):
            self._destroy(pod_dir)
            raise MinipodError(outcome.get("error") or "the pod could not be started",
                               hint=outcome.get("hint"))
        from .handle import Pod

        return StartReport(Pod(self, namespace, name), outcome.get("failures") or {})

    # ------------------------------------------------------------ queries
    def pods(self) -> list:
        from .handle import Pod

        out = []
        for pod_dir in self.table.all():
            state = pod_dir.read()
            if state.get("pod"):
                meta = state["pod"]["metadata"]
                out.append(Pod(self, meta["namespace"], meta["name"]))
        return out

    def pod(self, ref: str):
        from .handle import Pod
        from .state import split_ref

        self.table.find(ref)
        return Pod(self, *split_ref(ref))

    def events(self, ref: str) -> list[dict]:
        """The pod's events, oldest first (see ``minipod.events``)."""
        return self.table.find(ref).read().get("events", [])

    def pod_object(self, ref: str) -> dict:
        """The Pod JSON of ``inspect``."""
        from .podstatus import pod_object

        pod_dir = self.table.find(ref)
        state = pod_dir.read()
        if not state.get("pod"):
            raise StateError(f'pod "{ref}" is still being created')
        return pod_object(state, pod_dir.supervisor_alive())

    def pod_objects(self) -> list[dict]:
        from .podstatus import pod_object

        out = []
        for pod_dir in self.table.all():
            state = pod_dir.read()
            if state.get("pod"):
                out.append(pod_object(state, pod_dir.supervisor_alive()))
        return out

    # ------------------------------------------------------------ stop / rm
    def stop(self, ref: str, timeout: float | None = None) -> None:
        """Stop gracefully: each container's preStop hook, then its stop
        signal, then SIGKILL once the grace period is over (``timeout``
        seconds instead of the pod's terminationGracePeriodSeconds when
        given). Returns as soon as every process is gone."""
        self.stop_all([ref], timeout)

    def stop_all(self, refs: list[str], timeout: float | None = None, *, remove: bool = False) -> None:
        """Stop several pods at once: all are asked first, then waited for,
        so their grace periods run side by side. With ``remove`` (for
        ``rm``), their supervisors delete their data and logs as well."""
        require_root("minipod stop")
        waiting = []
        for ref in refs:
            pod_dir = self.table.find(ref)
            state = self._signal_stop(ref, pod_dir, timeout, remove)
            if state is not None:
                spec = state["pod"]["spec"]
                grace = timeout if timeout is not None else float(spec.get("terminationGracePeriodSeconds", 30))
                # The supervisor kills what is left when the grace period
                # ends; the margin covers that and the release of host
                # resources (shorter for an immediate stop: rm -f -t 0 then
                # kills a supervisor that does not answer, and cleans up itself).
                margin = STOP_MARGIN if grace > 0 else KILL_MARGIN
                waiting.append((ref, pod_dir, state["supervisorPid"], time.monotonic() + grace + margin))
        late = [ref for ref, pod_dir, pid, limit in waiting if not _wait_supervisor_gone(pod_dir, pid, limit)]
        if late:
            raise StateError(f'pod {", ".join(late)} did not stop in time', hint="use 'minipod rm -f -t 0'")

    def _signal_stop(self, ref: str, pod_dir: PodDir, timeout: float | None,
                     remove: bool = False) -> dict | None:
        """Ask a live supervisor to stop its pod; returns the pod's state as
        read to do so, None if there is no supervisor."""
        if not pod_dir.supervisor_alive():
            return None
        from .teardown import is_supervisor

        state = pod_dir.read()
        pid = state.get("supervisorPid")
        if not is_supervisor(pid):
            raise StateError(f'pod "{ref}": its supervisor cannot be found')
        pod_dir.request_stop(timeout, remove)
        os.kill(pid, signal.SIGTERM)
        return state

    def remove(self, ref: str, force: bool = False, timeout: float | None = None) -> None:
        """Remove a stopped pod and everything it made on the host; with
        ``force``, stop it first (gracefully, within ``timeout`` seconds
        if given; ``timeout=0`` kills at once)."""
        require_root("minipod rm")
        pod_dir = self.table.find(ref)
        if pod_dir.supervisor_alive():
            if not force:
                raise StateError(f'pod "{ref}" is running', hint="stop it first, or use 'minipod rm -f'")
            # Even with timeout 0 the supervisor takes its pod apart: it has
            # the network and cgroup modules loaded, which this process would
            # spend ~25 ms importing.
            try:
                self.stop_all([ref], timeout, remove=True)
            except StateError:
                pass  # what did not stop in time is killed below
        self._destroy(pod_dir)

    def _destroy(self, pod_dir: PodDir) -> None:
        """Kill, release and delete, from the record alone: works whether the
        supervisor is alive, dead, or never existed."""
        from .teardown import kill_supervisor, release_host_resources, remove_tree

        state = pod_dir.read()
        alive = pod_dir.supervisor_alive()
        if alive:
            from .cgroups import open_pod_cgroup

            # Every process of the pod and its supervisor at once; the
            # supervisor must be gone before its resources are released (it
            # could still be making them), the pod's processes need not be:
            # release_host_resources overlaps their exit with the network's
            # teardown, and init reaps what the supervisor no longer can.
            if state.get("cgroupId"):
                cg = open_pod_cgroup(parent=state.get("cgroupParent", self.config.cgroup_parent),
                                     pod_id=state["cgroupId"])
                if cg.exists():
                    cg.kill_all(signal.SIGKILL, wait=False)
            kill_supervisor(state.get("supervisorPid"))
            deadline = time.monotonic() + 5
            while pod_dir.supervisor_alive() and time.monotonic() < deadline:
                time.sleep(0.001)  # it is gone ~2 ms after SIGKILL; a probe costs ~30 µs
        if alive or not state.get("released"):  # a supervisor that ended cleanly gave it all back
            release_host_resources(self.config, state)
            from .cgroups import remove_parent_if_empty

            remove_parent_if_empty(state.get("cgroupParent", self.config.cgroup_parent))
        for path in (state.get("dataDir"), state.get("logDir")):  # gone already after 'rm -f'
            if path:
                remove_tree(path)
        remove_tree(pod_dir.path)

    def down(self, source, timeout: float | None = None) -> list[str]:
        """Stop (gracefully, see ``stop``) and remove the pods a manifest
        describes; returns their names."""
        manifest = self.validate(source)
        require_root("minipod down")
        removed = []
        for pod in manifest.pods:
            ref = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            try:
                pod_dir = self.table.find(ref)
            except StateError:
                continue
            try:
                self.stop_all([ref], timeout, remove=True)
            except StateError:
                pass  # what did not stop in time is killed now
            self._destroy(pod_dir)
            removed.append(pod["metadata"]["name"])
        return removed

    # ------------------------------------------------------------ network
    def remove_network(self) -> bool:
        """Remove the pod network (``--bridge``/``--subnet``): its bridge,
        if minipod made it, its nftables table and its address pool. The
        first pod makes them and they stay after the last, as Docker's
        docker0 does. Refused while a pod is on it; returns whether there
        was anything to remove."""
        require_root("minipod network rm")
        from .network import remove_network
        from .teardown import pod_network_config

        return remove_network(pod_network_config(self.config, {}))

    # ------------------------------------------------------------ images
    def image_store(self):
        from .images import ImageStore

        return ImageStore(self.config.images_dir)

    def remove_image(self, ref: str, *, force: bool = False) -> list[str]:
        """Untag an image and collect what no image and no pod uses; returns
        the references removed. Refused while a pod (running or not) was
        made from it, unless ``force``: then only the name goes, and the
        layers stay as long as a pod has them as its lower dirs (docker's
        ``rmi -f`` of an image a stopped container uses)."""
        from .errors import ImageError

        require_root("minipod image rm")
        store = self.image_store()
        image = store.resolve(ref)
        by_name = ref not in (image.id, image.id.split(":")[-1]) and not image.id.split(":")[-1].startswith(ref)
        keep = lambda: self._layers_pods_use(store)  # noqa: E731 - evaluated under the store's GC lock
        if by_name and any(other.id == image.id and other.ref != image.ref for other in store.images()):
            return store.remove(ref, keep_layers=keep)  # another name keeps the layers: this only untags
        users = self._pods_using_images().get(image.id, [])
        if users and not force:
            raise ImageError(f'image "{ref}" is used by pod {", ".join(users)}',
                             hint="remove those pods first, or untag it anyway with 'minipod image rm -f' "
                                  "(their layers stay until no pod uses them)")
        return store.remove(ref, keep_layers=keep)

    def prune_images(self, *, unused_images: bool = False):
        """``image prune``: remove blobs and unpacked layers that no image
        references and no pod uses, and what interrupted writers left; with
        ``unused_images`` first untag every image no pod was made from.
        Waits for a pull in progress. Returns (references removed, GcReport)."""
        require_root("minipod image prune")
        store = self.image_store()
        return store.prune(keep_layers=lambda: self._layers_pods_use(store), unused_images=unused_images,
                           used_image_ids=self._pods_using_images().keys())

    def _pod_image_records(self):
        """(pod name, the images of its spec.json or None when unreadable)
        for every pod, running or not."""
        import json

        for pod_dir in self.table.all():
            try:
                with open(os.path.join(pod_dir.path, "spec.json")) as f:
                    images = json.load(f).get("images", {})
            except (OSError, ValueError, AttributeError):
                images = None
            yield pod_dir.key.replace("_", "/", 1), images

    def _pods_using_images(self) -> dict[str, list[str]]:
        """Image ID -> the pods made from it."""
        users: dict[str, list[str]] = {}
        for name, images in self._pod_image_records():
            for image_id in sorted({info.get("id") for info in (images or {}).values() if info.get("id")}):
                users.setdefault(image_id, []).append(name)
        return users

    def _layers_pods_use(self, store) -> set[str]:
        """Diff IDs of the layers that pods have as lower dirs. A pod whose
        spec.json cannot be read (one being created this instant) might use
        any: then every layer is kept."""
        used: set[str] = set()
        for _name, images in self._pod_image_records():
            if images is None:
                return set(store.layers.diff_ids())
            for info in images.values():
                for layer_dir in info.get("layer_dirs") or []:
                    diff_id = store.layer_diff_id(layer_dir)
                    if diff_id:
                        used.add(diff_id)
        return used

    def pull_image(self, ref: str, *, creds: tuple[str, str] | None = None, insecure: bool = False,
                   progress=None):
        """Pull ``ref`` from its registry into the image store."""
        from .images.pull import pull_image

        require_root("minipod image pull")
        return pull_image(self.image_store(), ref, creds=creds, insecure=insecure, progress=progress)

    def load_image(self, path: str, ref: str | None = None) -> list:
        """Load a docker-save archive or OCI layout/archive; returns the Images."""
        from .images.load import load_images

        require_root("minipod image load")
        return load_images(self.image_store(), path, ref)

    def import_image(self, src: str, ref: str):
        from .images.importer import import_rootfs

        require_root("minipod image import")
        return import_rootfs(self.image_store(), src, ref)

