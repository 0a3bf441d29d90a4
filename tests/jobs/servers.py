"""Servers the tests start on 127.0.0.1 and stop by their own session: a Ray head and an S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from jobs.cluster.session import RAY_LOCAL_DEFAULTS

from .faults import kill_session

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def env_with_venv() -> dict[str, str]:
    """This interpreter's bin first on PATH, so jobs run `python` with lie-sweep's dependencies."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **RAY_LOCAL_DEFAULTS}


CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # where `ray start` notes the latest head


def stop_ray_head(proc: subprocess.Popen, previous: str | None) -> None:
    """Kill the head's session, and put back the note of the latest head as it was before ours."""
    kill_session(proc)
    if previous is None:
        CURRENT_CLUSTER.unlink(missing_ok=True)
    else:
        CURRENT_CLUSTER.write_text(previous)


def start_ray_head(tmp: Path) -> tuple[subprocess.Popen, str]:
    """`ray start --head --block` on 127.0.0.1 in its own session; returns (process, dashboard URL).

    Output goes to a file: a pipe that nobody reads blocks the server once it is full."""
    dash = free_port()
    proc = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(free_port()), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                             "--num-cpus", "2", "--include-dashboard", "true", "--disable-usage-stats",
                             # free ports for the agents: another Ray on this machine holds the defaults
                             "--dashboard-agent-listen-port", str(free_port()),
                             "--dashboard-agent-grpc-port", str(free_port()),
                             "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())],
                            start_new_session=True, env=env_with_venv(), stdout=open(tmp / "head.log", "w"),
                            stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{dash}"
    try:
        wait_http(url + "/api/version", proc, tmp / "head.log")
    except BaseException:
        kill_session(proc)
        raise
    return proc, url


def start_s3(tmp: Path) -> tuple[subprocess.Popen, str]:
    """moto's S3 server on 127.0.0.1 in its own session; returns (process, endpoint URL)."""
    port = free_port()
    # output to a file: a pipe nobody reads would block the server once full
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], start_new_session=True,
                            stdout=open(tmp / "s3.log", "w"), stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, proc, tmp / "s3.log")
    except BaseException:
        kill_session(proc)
        raise
    return proc, url
