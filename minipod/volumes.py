"""Pod volumes on the host, and how each container's volumeMounts reach them.

A volume is prepared once per pod by the supervisor (a directory, a tmpfs, a
host path that passed its type check, files from a ConfigMap or Secret) and
then bind-mounted into every container that mounts it, so the containers
really share it. ``subPath`` is resolved on the host and pinned by an open
file descriptor, so a symlink planted in the volume by a container cannot
redirect the mount outside the volume between the check and the mount.
"""

from __future__ import annotations

import base64
import os
import stat

from .errors import KernelError, MinipodError, SpecError
from .record import Record
from .rootfs import BindMount


class PreparedVolume(Record):
    """One volume on the host. ``mounted``: a tmpfs minipod mounted on the
    host (teardown unmounts everything under the pod's data directory)."""

    name: str
    host_path: str
    is_dir: bool = True
    mounted: bool = False


def _check_host_path(path: str, kind: str, vol_field: str) -> bool:
    """Apply a hostPath ``type`` check; returns whether the path is a
    directory. Creates what the ``…OrCreate`` types allow."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if kind == "DirectoryOrCreate" and st is None:
        os.makedirs(path, 0o755, exist_ok=True)
        return True
    if kind == "FileOrCreate" and st is None:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise SpecError(f"{vol_field}.hostPath.path: parent directory {parent} does not exist")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        return False
    wanted = {
        "Directory": stat.S_ISDIR, "DirectoryOrCreate": stat.S_ISDIR,
        "File": stat.S_ISREG, "FileOrCreate": stat.S_ISREG,
        "Socket": stat.S_ISSOCK, "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK,
    }
    if kind in wanted:
        if st is None:
            raise SpecError(f"{vol_field}.hostPath.path: {path} does not exist (type {kind})")
        if not wanted[kind](st.st_mode):
            raise SpecError(f"{vol_field}.hostPath.path: {path} is not a {kind}")
    elif st is None:
        # type "" does no check, but a bind mount of nothing cannot work
        raise SpecError(f"{vol_field}.hostPath.path: {path} does not exist")
    return stat.S_ISDIR(st.st_mode)


def _write_projection(directory: str, entries: dict[str, bytes], items: list | None,
                      default_mode: int, vol_field: str) -> None:
    """Write ConfigMap/Secret keys as files, all of them or the listed ``items``."""
    os.makedirs(directory, 0o755, exist_ok=True)
    selected: list[tuple[str, str, int]] = []
    if items:
        for i, item in enumerate(items):
            key = item["key"]
            if key not in entries:
                raise SpecError(f"{vol_field}.items[{i}].key: no key {key!r}")
            selected.append((key, item["path"], item.get("mode", default_mode)))
    else:
        selected = [(key, key, default_mode) for key in entries]
    for key, rel, mode in selected:
        path = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, entries[key])
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def config_map_entries(cm: dict) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


def secret_entries(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def prepare_volumes(pod: dict, data_dir: str, config_maps: dict, secrets: dict,
                    mount_tmpfs, status: dict | None = None) -> dict[str, PreparedVolume]:
    """Make every volume of ``pod`` exist on the host under ``data_dir``;
    returns them by name.

    ``mount_tmpfs(path, options)`` mounts a tmpfs (the caller owns the
    native module). Whatever is mounted when a later volume fails lies
    under ``data_dir``, where teardown unmounts it."""
    namespace = pod["metadata"]["namespace"]
    pod_sc = pod["spec"].get("securityContext") or {}
    result: dict[str, PreparedVolume] = {}
    for i, vol in enumerate(pod["spec"].get("volumes") or []):
        name, vol_field = vol["name"], f"spec.volumes[{i}]"
        path = os.path.join(data_dir, "volumes", name)
        if "emptyDir" in vol:
            os.makedirs(path, 0o777, exist_ok=True)
            os.chmod(path, 0o777)  # like kubelet: any container user may write
            in_memory = (vol["emptyDir"] or {}).get("medium") == "Memory"
            if in_memory:
                size = (vol["emptyDir"] or {}).get("sizeLimit")
                mount_tmpfs(path, "mode=1777" + (f",size={_bytes(size)}" if size else ""))
            result[name] = PreparedVolume(name, path, mounted=in_memory)
        elif "hostPath" in vol:
            host = vol["hostPath"]["path"]
            is_dir = _check_host_path(host, vol["hostPath"].get("type") or "", vol_field)
            result[name] = PreparedVolume(name, host, is_dir)
        elif "configMap" in vol or "secret" in vol:
            kind = "configMap" if "configMap" in vol else "secret"
            entries = _object_entries(kind, vol[kind], namespace, config_maps, secrets, f"{vol_field}.{kind}")
            _write_projection(path, entries, vol[kind].get("items"), vol[kind].get("defaultMode", 0o644),
                              f"{vol_field}.{kind}")
            result[name] = PreparedVolume(name, path)
        elif "downwardAPI" in vol:
            src = vol["downwardAPI"]
            entries, items = _downward_entries(pod, src.get("items") or [], status or {})
            _write_projection(path, entries, items, src.get("defaultMode", 0o644), f"{vol_field}.downwardAPI")
            result[name] = PreparedVolume(name, path)
        elif "projected" in vol:
            _write_projected(path, vol["projected"], pod, namespace, config_maps, secrets, status or {},
                             f"{vol_field}.projected")
            result[name] = PreparedVolume(name, path)
        else:
            kinds = sorted(k for k in vol if k != "name")
            raise SpecError(f"{vol_field}: volume source {', '.join(kinds)} is not supported by minipod")
        if pod_sc.get("fsGroup") is not None and name in result and "hostPath" not in vol:
            # kubelet leaves hostPath alone: it belongs to the host, not the pod.
            apply_fs_group(result[name].host_path, pod_sc["fsGroup"], read_only="emptyDir" not in vol,
                           policy=pod_sc.get("fsGroupChangePolicy") or "Always")
    return result


# kubelet's masks (pkg/volume/volume_linux.go): group read-write, or read-only
# for the projected kinds, and group search on every directory.
RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110


def fs_group_root_matches(root: str, gid: int, read_only: bool) -> bool:
    """Whether ``fsGroupChangePolicy: OnRootMismatch`` may skip ``root``: it
    already has the group, the group permissions and the setgid bit."""
    st = os.lstat(root)
    wanted = (RO_MASK if read_only else RW_MASK) | EXEC_MASK
    return st.st_gid == gid and st.st_mode & wanted == wanted and bool(st.st_mode & stat.S_ISGID)


def apply_fs_group(root: str, gid: int, read_only: bool = False, policy: str = "Always") -> None:
    """Give the volume at ``root`` to group ``gid`` as kubelet does for
    ``fsGroup``: every entry is chowned to the group and made group
    readable (and writable unless ``read_only``); directories also get
    group search and the setgid bit, so files created later inherit the
    group. Symlinks are re-grouped but never followed."""
    if policy == "OnRootMismatch" and fs_group_root_matches(root, gid, read_only):
        return
    mask = RO_MASK if read_only else RW_MASK
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            if path != dirpath and os.path.isdir(path) and not os.path.islink(path):
                continue  # walked as its own dirpath next
            try:
                os.lchown(path, -1, gid)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    continue
                extra = mask | (stat.S_ISGID | EXEC_MASK if stat.S_ISDIR(st.st_mode) else 0)
                os.chmod(path, stat.S_IMODE(st.st_mode) | extra)
            except OSError as exc:
                raise KernelError.from_oserror("apply fsGroup to", exc, path) from None


def _object_entries(kind: str, src: dict, namespace: str, config_maps: dict, secrets: dict,
                    where: str) -> dict[str, bytes]:
    """The keys of the ConfigMap or Secret a volume source names."""
    ref = src.get("secretName", src.get("name")) if kind == "secret" else src.get("name")
    table = config_maps if kind == "configMap" else secrets
    obj = table.get((namespace, ref))
    if obj is None:
        if not src.get("optional"):
            raise SpecError(f"{where}: {kind} {ref!r} not found")
        return {}
    return config_map_entries(obj) if kind == "configMap" else secret_entries(obj)


def _downward_entries(pod: dict, items: list, status: dict) -> tuple[dict[str, bytes], list]:
    """downwardAPI items as file entries keyed by their path."""
    from .envvars import field_value, resource_value

    entries, selected = {}, []
    for item in items:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"], status)
        else:
            ref = item["resourceFieldRef"]
            container = next((c for c in pod["spec"]["containers"] if c["name"] == ref.get("containerName")), {})
            value = resource_value(container, ref)
        entries[item["path"]] = value.encode()
        selected.append({"key": item["path"], "path": item["path"], **({"mode": item["mode"]} if "mode" in item else {})})
    return entries, selected


def _write_projected(path: str, src: dict, pod: dict, namespace: str, config_maps: dict, secrets: dict,
                     status: dict, where: str) -> None:
    """Several sources projected into one directory, in order."""
    mode = src.get("defaultMode", 0o644)
    os.makedirs(path, 0o755, exist_ok=True)
    for i, source in enumerate(src.get("sources") or []):
        for kind in ("configMap", "secret"):
            if kind in source:
                entries = _object_entries(kind, source[kind], namespace, config_maps, secrets,
                                          f"{where}.sources[{i}].{kind}")
                _write_projection(path, entries, source[kind].get("items"), mode, f"{where}.sources[{i}]")
        if "downwardAPI" in source:
            entries, items = _downward_entries(pod, source["downwardAPI"].get("items") or [], status)
            _write_projection(path, entries, items, mode, f"{where}.sources[{i}]")


def _bytes(quantity) -> int:
    from .spec import parse_quantity

    return int(parse_quantity(str(quantity)))


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def open_subpath(volume_root: str, sub_path: str, field_path: str) -> tuple[int, bool]:
    """Open ``volume_root/sub_path`` as an O_PATH fd that provably lies inside
    the volume, creating missing directories as kubelet does.

    The check is made on the opened fd (its ``/proc/self/fd`` link), not on
    the name, so a symlink swapped in afterwards changes nothing."""
    root = os.path.realpath(volume_root)
    target = os.path.realpath(os.path.join(root, sub_path))
    if target != root and not target.startswith(root + os.sep):
        raise MinipodError(f"{field_path}: subPath {sub_path!r} leads outside the volume")
    if not os.path.lexists(target):
        os.makedirs(target, 0o755, exist_ok=True)
    try:
        fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError.from_oserror("open subPath", exc, target) from None
    real = _fd_path(fd)
    if real != root and not real.startswith(root + os.sep):
        os.close(fd)
        raise MinipodError(f"{field_path}: subPath {sub_path!r} leads outside the volume")
    return fd, stat.S_ISDIR(os.fstat(fd).st_mode)


def container_binds(container: dict, c_field: str, volumes: dict[str, PreparedVolume], env: dict[str, str],
                    stage_dir: str, bind) -> tuple[list[BindMount], list[str]]:
    """The bind mounts of one container's volumeMounts.

    A ``subPath`` is opened and checked on the host, then bind-mounted from
    its fd onto a staging path under ``stage_dir`` (``bind(source, target)``;
    the kernel refuses a bind from an fd of another mount namespace, so the
    container cannot use the fd itself). The container binds the staging
    path; the caller unmounts the returned staging paths once the container
    has its own copy."""
    binds: list[BindMount] = []
    staged: list[str] = []
    for j, vm in enumerate(container.get("volumeMounts") or []):
        vol = volumes[vm["name"]]
        sub = vm.get("subPath") or ""
        if vm.get("subPathExpr"):
            from .envvars import expand

            sub = expand(vm["subPathExpr"], env)
        source, is_dir = vol.host_path, vol.is_dir
        if sub:
            if not vol.is_dir:
                raise MinipodError(f"{c_field}.volumeMounts[{j}].subPath: volume {vol.name} is not a directory")
            fd, is_dir = open_subpath(vol.host_path, sub, f"{c_field}.volumeMounts[{j}]")
            try:
                source = os.path.join(stage_dir, str(j))
                os.makedirs(stage_dir, 0o700, exist_ok=True)
                if is_dir:
                    os.makedirs(source, 0o700, exist_ok=True)
                else:
                    os.close(os.open(source, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
                bind(f"/proc/self/fd/{fd}", source)
                staged.append(source)
            finally:
                os.close(fd)
        binds.append(BindMount(source, vm["mountPath"], bool(vm.get("readOnly")), is_dir))
    return binds, staged
