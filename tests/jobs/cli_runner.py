"""``lie-sweep ARGS`` as a user's shell sees it (exit status, stdout, stderr), run in this process or in a new one.

In this process (:func:`run_cli`) the command costs what it computes, not an interpreter start and torch's
import (~3 s each); an exception escaping ``main`` is reported as Python reports an uncaught one (a traceback
on stderr, exit status 1), so "one line, no traceback" is asserted of the same text. :func:`cli_process`
runs a real process, for what only a process shows (its exit, its output once the interpreter ends).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``jobs.cli.main(args)`` with ``cwd`` as the working directory and its output captured."""
    from jobs.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:          # argparse's errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            except Exception:                  # noqa: BLE001 - what the interpreter would print
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["lie-sweep", *args], code, out.getvalue(), err.getvalue())


def cli_process(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m jobs.cli ARGS`` in a new process."""
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)
