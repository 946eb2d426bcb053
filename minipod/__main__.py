"""The ``minipod`` command: the console script and ``python -m minipod``.

Two things happen here, outside the CLI proper (``cli.py``), for speed:
``minipod run`` forks its pod's supervisor before click is even imported,
and every command leaves without tearing the interpreter down.
"""

import os
import sys

# Importing click and the CLI takes ~40 ms here: a ``run`` forks its pod's
# supervisor first, so that the supervisor's own imports overlap them. To
# find the command before click parses the line, the global options that
# take a value must be known (tests/unit check them against the CLI's).
GLOBAL_OPTIONS_WITH_VALUE = ("--root", "--bridge", "--subnet", "--cgroup-parent")


def command_of(argv: list[str]) -> str | None:
    """The subcommand of a ``minipod`` command line: its first argument
    that is neither an option nor an option's value. A wrong guess costs a
    fork: an unused supervisor exits as soon as this process does."""
    args = iter(argv)
    for arg in args:
        if arg in GLOBAL_OPTIONS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def entry() -> "NoReturn":  # noqa: F821
    """Run the command, then leave with ``os._exit``: Python's orderly
    shutdown (every module and object freed) takes ~16 ms here, on every
    command, and nothing needs it: the output is flushed here, and minipod
    keeps no other buffered state."""
    if command_of(sys.argv[1:]) == "run":
        from .launcher import prefork

        prefork()
    from .cli import main

    try:
        main(prog_name="minipod")  # click ends with sys.exit()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away (``minipod ps | head``)
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    entry()
