"""The ``minipod`` command: the console script and ``python -m minipod``.

Two things happen here, outside the CLI proper (``cli.py``), for speed:
``minipod run`` forks its pod's supervisor before click is even imported
(see ``launcher.prefork_for``), and every command leaves without tearing
the interpreter down.
"""

import os
import sys


def entry() -> "NoReturn":  # noqa: F821
    """Run the command, then leave with ``os._exit``: Python's orderly
    shutdown (every module and object freed) takes ~16 ms here, on every
    command, and nothing needs it: the output is flushed here, and minipod
    keeps no other buffered state."""
    from .launcher import prefork_for

    prefork_for(sys.argv[1:])
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
