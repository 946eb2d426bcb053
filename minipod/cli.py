"""The ``minipod`` command line: parse, call the runtime, print.

Nothing here decides how a pod is made; errors become one ``error:`` line
and a non-zero exit (a traceback only with ``--debug``). Imports stay lazy
so that ``minipod ps`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys

import click

from .errors import MinipodError, SpecError


def _runtime(ctx: click.Context):
    from .runtime import Runtime

    return Runtime(**ctx.obj)


def _fail(exc: BaseException, debug: bool) -> "NoReturn":  # noqa: F821
    if debug:
        import traceback

        traceback.print_exc()
    if isinstance(exc, SpecError) and len(exc.problems) > 1:
        where = f"{exc.source}: " if exc.source else ""
        click.echo(f"error: {where}{len(exc.problems)} problems in the manifest:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    hint = getattr(exc, "hint", None)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(getattr(exc, "exit_code", 1) or 1)


class _Group(click.Group):
    """Turns every MinipodError (and kernel OSError) into one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MinipodError as exc:
            _fail(exc, bool(ctx.obj and ctx.obj.get("debug")))
        except OSError as exc:
            _fail(exc, bool(ctx.obj and ctx.obj.get("debug")))


def _read_source(path: str):
    if path == "-":
        return sys.stdin.read()
    if not os.path.exists(path):
        raise MinipodError(f"{path}: no such file")
    return path


def _warn(warning: str) -> None:
    click.echo(f"warning: {warning}", err=True)


def _print_warnings(manifest) -> None:
    for warning in getattr(manifest, "warnings", []):
        _warn(warning)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="MINIPOD_ROOT", help="Keep all state, data and logs under this directory.")
@click.option("--bridge", envvar="MINIPOD_BRIDGE", help="Name of the host bridge for pod networks.")
@click.option("--subnet", envvar="MINIPOD_SUBNET", help="Pod subnet (CIDR).")
@click.option("--cgroup-parent", envvar="MINIPOD_CGROUP_PARENT", help="Parent cgroup of all pods.")
@click.option("--debug", is_flag=True, help="Show tracebacks and every kernel step.")
@click.pass_context
def main(ctx, root, bridge, subnet, cgroup_parent, debug):
    """minipod: run Kubernetes Pod manifests on this host, no cluster needed."""
    ctx.obj = {"root": root, "bridge": bridge, "subnet": subnet, "cgroup_parent": cgroup_parent,
               "debug": debug}
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")


@main.command()
@click.argument("file")
@click.pass_context
def validate(ctx, file):
    """Check a manifest as `run` would; create nothing."""
    manifest = _runtime(ctx).validate(_read_source(file))
    _print_warnings(manifest)
    names = ", ".join(p["metadata"]["name"] for p in manifest.pods)
    click.echo(f"{file}: valid ({len(manifest.pods)} pod{'s' if len(manifest.pods) != 1 else ''}: {names})")


@main.command()
@click.argument("file")
@click.option("-d", "--detach", is_flag=True, help="Return once every container has started.")
@click.option("--replace", is_flag=True, help="Remove a pod of the same name first.")
@click.option("-p", "--publish", multiple=True, metavar="[IP:]HOST:CONTAINER[/PROTO]",
              help="Publish a container port on the host (first pod of the file).")
@click.pass_context
def run(ctx, file, detach, replace, publish):
    """Create and start every Pod in FILE ('-' for standard input)."""
    rt = _runtime(ctx)
    # The manifest is read by start(), after it forked the pod's supervisor
    # (which imports its modules meanwhile).
    reports = rt.start(_read_source(file), replace=replace, publish=list(publish),
                       warn=_warn)
    if ctx.obj["debug"]:
        _show_supervisor_logs(rt, reports)
    failed = False
    for report in reports:
        for container, message in report.failures.items():
            click.echo(f'error: pod "{report.pod.name}": container "{container}" failed to start: {message}',
                       err=True)
            failed = True
    if detach:
        for report in reports:
            click.echo(report.pod.name)
        if failed:
            click.echo("hint: see 'minipod inspect', remove with 'minipod rm -f'", err=True)
        sys.exit(1 if failed else 0)
    sys.exit(_follow_foreground(rt, [r.pod for r in reports]))


def _show_supervisor_logs(rt, reports) -> None:
    """With --debug: every step the supervisor took, spawn plans included."""
    for report in reports:
        path = rt.table.find(report.pod.ref).supervisor_log
        click.echo(f"--- supervisor of pod {report.pod.name} ({path})", err=True)
        with open(path, errors="replace") as f:
            click.echo(f.read().rstrip(), err=True)


def _follow_foreground(rt, pods) -> int:
    """Stream every container's output until the pods end; Ctrl-C stops
    them gracefully and exits 130."""
    import signal
    import threading

    from .podlogs import stream_pod

    def write(line: str) -> None:
        sys.stdout.write(line)
        sys.stdout.flush()

    def follow(ref: str, ended: threading.Event) -> None:
        try:
            stream_pod(rt, ref, write)
        finally:
            ended.set()

    # Waited for with events, not Thread.join: a Ctrl-C that lands inside
    # join() can leave Python 3.11 taking a running thread for ended (its
    # bpo-45274 handling), and the pod's last lines would be lost.
    interrupted = False
    ends = [threading.Event() for _ in pods]
    for p, ended in zip(pods, ends):
        threading.Thread(target=follow, args=(p.ref, ended), daemon=True).start()
    try:
        for ended in ends:
            while not ended.wait(0.2):
                pass
    except KeyboardInterrupt:
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        click.echo("\nstopping…", err=True)
        rt.stop_all([p.ref for p in pods])
        for ended in ends:  # each stream prints the pod's last lines, then ends
            ended.wait(5)
    if interrupted:
        return 130
    for p in pods:
        status = p.status
        if status["phase"] != "Succeeded":
            for c in status["initContainerStatuses"] + status["containerStatuses"]:
                term = c["state"].get("terminated") or c.get("lastState", {}).get("terminated")
                if term and term.get("exitCode"):
                    return term["exitCode"]
            return 1
    return 0


@main.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Also show pods that have ended.")
@click.option("-o", "--output", type=click.Choice(["wide", "json", "yaml"]), default=None)
@click.pass_context
def ps(ctx, show_all, output):
    """List pods, like `kubectl get pods`."""
    from .runtime import require_root

    require_root("minipod ps")
    pods = _runtime(ctx).pod_objects()
    if not show_all:
        pods = [p for p in pods if p["status"]["phase"] not in ("Succeeded", "Failed")]
    if output == "json":
        click.echo(json.dumps(pods, indent=2))
        return
    if output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(pods, sort_keys=False))
        return
    from .podstatus import age, ready_column, restarts_column, status_word

    rows = [["NAME", "READY", "STATUS", "RESTARTS", "AGE"]]
    if output == "wide":
        rows[0] += ["IP", "NAMESPACE", "SUPERVISOR"]
    for p in pods:
        row = [p["metadata"]["name"], ready_column(p), status_word(p), str(restarts_column(p)),
               age(p["metadata"].get("creationTimestamp"))]
        if output == "wide":
            row += [p["status"].get("podIP") or "<none>", p["metadata"]["namespace"],
                    str(p["status"]["minipod"].get("supervisorPid") or "-")]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


@main.command()
@click.argument("pod")
@click.pass_context
def inspect(ctx, pod):
    """One Pod as JSON, with its status and minipod's details."""
    from .runtime import require_root

    require_root("minipod inspect")
    click.echo(json.dumps(_runtime(ctx).pod_object(pod), indent=2))


@main.command()
@click.argument("pod")
@click.pass_context
def describe(ctx, pod):
    """One pod in words, like kubectl describe pod: containers, probes, conditions, events."""
    from .describe import describe_pod
    from .runtime import require_root

    require_root("minipod describe")
    rt = _runtime(ctx)
    click.echo(describe_pod(rt.pod_object(pod), rt.events(pod)), nl=False)


@main.command()
@click.argument("pod")
@click.option("-c", "--container", default=None)
@click.option("-f", "--follow", is_flag=True)
@click.option("-p", "--previous", is_flag=True)
@click.option("--timestamps", is_flag=True)
@click.option("--tail", type=int, default=None)
@click.pass_context
def logs(ctx, pod, container, follow, previous, timestamps, tail):
    """Print a container's output."""
    from .runtime import require_root

    require_root("minipod logs")
    rt = _runtime(ctx)
    handle = rt.pod(pod)
    out = sys.stdout
    try:
        for line in handle.logs(container, follow=follow, previous=previous, timestamps=timestamps, tail=tail):
            out.write(line)
            if follow:
                out.flush()
    except KeyboardInterrupt:
        pass


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.option("-c", "--container", default=None)
@click.option("-i", "--stdin", "interactive", is_flag=True, help="Pass standard input to the command.")
@click.option("-t", "--tty", is_flag=True, help="Give the command a terminal.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx, pod, container, interactive, tty, command):
    """Run COMMAND in a running container: minipod exec POD -- CMD [ARG…]."""
    from . import podexec
    from .runtime import require_root

    require_root("minipod exec")
    rt = _runtime(ctx)
    state = rt.table.find(pod).read()
    if tty and interactive and not os.isatty(0):
        # As kubectl does: a terminal in the middle would echo piped input back.
        click.echo("Unable to use a TTY - input is not a terminal", err=True)
        tty = False
    if tty:
        code = podexec.run_tty(state, container, list(command), interactive)
    else:
        if not interactive:
            os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
        code = podexec.run_attached(state, container, list(command))
    sys.exit(code)


@main.command()
@click.argument("pod", required=False)
@click.option("-o", "--output", type=click.Choice(["json"]), default=None)
@click.pass_context
def stats(ctx, pod, output):
    """CPU and memory use of each running container, like `kubectl top pod`."""
    from . import stats as usage
    from .runtime import require_root

    require_root("minipod stats")
    found = usage.pod_stats(usage.running_pod_states(_runtime(ctx), pod))
    if output == "json":
        click.echo(json.dumps(found, indent=2))
        return
    rows = usage.table(found)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


GRACE_HELP = "Seconds the containers get to exit before they are killed (default: the pod's terminationGracePeriodSeconds; 0 kills at once)."


@main.command()
@click.argument("pods", nargs=-1, required=True)
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=None, help=GRACE_HELP)
@click.pass_context
def stop(ctx, pods, timeout):
    """Stop pods gracefully (preStop, stop signal, grace period, SIGKILL); keep their state and logs."""
    _runtime(ctx).stop_all(list(pods), timeout)
    for pod in pods:
        click.echo(pod)


@main.command()
@click.argument("pods", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Stop running pods first.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=None, help=GRACE_HELP)
@click.pass_context
def rm(ctx, pods, force, timeout):
    """Remove pods and everything they made on the host."""
    rt = _runtime(ctx)
    for pod in pods:
        rt.remove(pod, force=force, timeout=timeout)
        click.echo(pod)


@main.command()
@click.argument("file")
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=None, help=GRACE_HELP)
@click.pass_context
def down(ctx, file, timeout):
    """Stop and remove the pods a manifest describes."""
    for name in _runtime(ctx).down(_read_source(file), timeout):
        click.echo(name)


@main.group()
def network():
    """Manage the pod network (the bridge given by --bridge)."""


@network.command(name="rm")
@click.pass_context
def network_rm(ctx):
    """Remove the bridge, its nftables table and its address pool.

    The first pod makes them; they stay after the last pod is removed, as
    docker0 does. Refused while a pod is on the bridge."""
    rt = _runtime(ctx)
    if rt.remove_network():
        click.echo(rt.config.bridge)


@main.group()
def image():
    """Manage the local image store."""


@image.command(name="import")
@click.argument("src")
@click.argument("name")
@click.pass_context
def image_import(ctx, src, name):
    """Make an image from a root filesystem directory or tar."""
    img = _runtime(ctx).import_image(src, name)
    click.echo(f"{img.ref} {img.id}")


@image.command(name="pull")
@click.argument("ref")
@click.option("--creds", metavar="USER:PASSWORD", help="Credentials for the registry.")
@click.option("--insecure", is_flag=True, help="Allow plain HTTP to a registry that is not on loopback.")
@click.pass_context
def image_pull(ctx, ref, creds, insecure):
    """Pull an image from an OCI/Docker registry."""
    from .images.pull import Progress
    from .images.registry import parse_creds

    img = _runtime(ctx).pull_image(ref, creds=parse_creds(creds) if creds else None,
                                   insecure=insecure, progress=Progress())
    click.echo(f"{img.ref} {img.id}")


@image.command(name="load")
@click.argument("file")
@click.option("--name", "ref", default=None, help="Tag for an archive that names no image.")
@click.pass_context
def image_load(ctx, file, ref):
    """Load a docker-save archive or an OCI image layout (directory or tar)."""
    for img in _runtime(ctx).load_image(file, ref):
        click.echo(f"{img.ref} {img.id}")


@image.command(name="ls")
@click.option("-o", "--output", type=click.Choice(["json"]), default=None)
@click.pass_context
def image_ls(ctx, output):
    """List images."""
    images = _runtime(ctx).image_store().images()
    if output == "json":
        click.echo(json.dumps([{"ref": i.ref, "id": i.id, "digest": i.digest, "size": i.size,
                                "created": i.created} for i in images], indent=2))
        return
    rows = [["REFERENCE", "IMAGE ID", "SIZE"]]
    for i in images:
        rows.append([i.ref, i.id.split(":")[-1][:12], _human_size(i.size)])
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@image.command(name="rm")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True,
              help="Untag even if pods were made from it; their layers stay until no pod uses them.")
@click.pass_context
def image_rm(ctx, refs, force):
    """Remove images (and layers no other image or pod uses)."""
    rt = _runtime(ctx)
    for ref in refs:
        rt.remove_image(ref, force=force)
        click.echo(ref)


@image.command(name="prune")
@click.option("-a", "--all", "unused", is_flag=True, help="Also remove every image no pod was made from.")
@click.pass_context
def image_prune(ctx, unused):
    """Remove layers and blobs no image references and no pod uses."""
    untagged, report = _runtime(ctx).prune_images(unused_images=unused)
    for ref in untagged:
        click.echo(f"untagged: {ref}")
    for diff_id in report.layer_ids:
        click.echo(f"deleted layer: {diff_id}")
    click.echo(f"Total reclaimed space: {_human_size(report.freed)} ({report.layers} layers, {report.blobs} blobs, "
               f"{report.temporaries} leftovers of interrupted writes)")


@image.command(name="inspect")
@click.argument("ref")
@click.pass_context
def image_inspect(ctx, ref):
    """Show an image's reference, digests, config and layers."""
    i = _runtime(ctx).image_store().resolve(ref)
    click.echo(json.dumps({"ref": i.ref, "id": i.id, "digest": i.digest, "size": i.size,
                           "created": i.created, "config": i.config, "layers": i.layer_dirs}, indent=2))


def _human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n}"


if __name__ == "__main__":  # pragma: no cover
    from .__main__ import entry

    entry()
