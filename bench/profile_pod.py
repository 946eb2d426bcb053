"""cProfile of ``minipod run -d`` on both sides of the fork: the CLI, and the
pod's supervisor from its start until it reports the containers started,
then from there until it exits (the stop and teardown included).

    MINIPOD_ROOT=… .venv/bin/python bench/profile_pod.py [--dump=NAME] OUTDIR run -d POD.yaml

(The command runs in this process, not through the ``minipod`` entry point,
which leaves with ``os._exit`` and would never let cProfile write its file.)

It runs minipod's own CLI in this process, with the launcher's
``_supervisor_main`` wrapped so that the forked supervisor profiles itself:
``OUTDIR/cli.prof`` (or ``--dump=NAME``) is written when the command returns,
``OUTDIR/supervisor-start.prof`` when the supervisor has told the command
its outcome, ``OUTDIR/supervisor-rest.prof`` when it ends. Nothing in
minipod is changed; the wrapping lives in this process and its children.
Used by ``compare.py`` to say where minipod's time goes.
"""

from __future__ import annotations

import cProfile
import os
import sys


def install(out_dir: str) -> None:
    """Wrap the launcher so the forked supervisor profiles itself."""
    from minipod import launcher

    real_main = launcher._supervisor_main
    current: dict = {}

    def tell_caller(self, message: dict) -> None:
        first = self.ready_fd is not None
        current["tell"](self, message)
        if first:
            # The outcome is told: what follows is the pod's life and its end.
            current["profile"].disable()
            current["profile"].dump_stats(os.path.join(out_dir, "supervisor-start.prof"))
            current["profile"] = cProfile.Profile()
            current["profile"].enable()

    def supervisor_main(config, pod_dir, ready_fd):
        current["profile"] = cProfile.Profile()
        current["profile"].enable()
        # Imported here, in the forked supervisor, as minipod itself does:
        # the CLI's profile must not pay for it.
        from minipod.supervisor import Supervisor

        current["tell"] = Supervisor.tell_caller
        Supervisor.tell_caller = tell_caller
        try:
            return real_main(config, pod_dir, ready_fd)
        finally:
            current["profile"].disable()
            current["profile"].dump_stats(os.path.join(out_dir, "supervisor-rest.prof"))

    launcher._supervisor_main = supervisor_main


def main(argv: list[str]) -> int:
    dump = "cli.prof"
    if argv and argv[0].startswith("--dump="):
        dump, argv = argv[0].split("=", 1)[1], argv[1:]
    if len(argv) < 2:
        print("usage: profile_pod.py [--dump=NAME] OUTDIR MINIPOD-ARGS…", file=sys.stderr)
        return 2
    out_dir, args = argv[0], argv[1:]
    install(out_dir)
    from minipod.cli import main as cli_main

    profile = cProfile.Profile()
    profile.enable()
    code = 0
    try:
        cli_main(args, prog_name="minipod")
    except SystemExit as exc:  # click ends with sys.exit
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        profile.disable()
        profile.dump_stats(os.path.join(out_dir, dump))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
