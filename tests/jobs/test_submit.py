"""Sweeps as Ray jobs on a real Ray head that the test starts on 127.0.0.1 (and stops by its session)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lie_sweep import open_sweep

from .cli_runner import run_cli
from .servers import CURRENT_CLUSTER, env_with_venv, start_ray_head, stop_ray_head
from .sweeps import assert_bitwise_equal, brackets_of, glob_overrides, marks_of, reference_arrays

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    previous = CURRENT_CLUSTER.read_text() if CURRENT_CLUSTER.exists() else None
    proc, url = start_ray_head(tmp_path_factory.mktemp("head"))
    yield url
    stop_ray_head(proc, previous)


SECRET = "lie-sweep-test-secret-0b7e"   # a credential in the submitting shell: it must not reach the job's metadata


def cli(*args, cwd, timeout=600):
    """A real ``lie-sweep`` process (the first submission: what a shell sees), with cloud credentials set: by name,
    and (issue 30) inside the values of settings that are forwarded: fsspec's JSON options, an endpoint URL's user
    info, API keys, connection strings and database URLs."""
    env = {**env_with_venv(), "AWS_ACCESS_KEY_ID": "AKIA" + SECRET, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_SESSION_TOKEN": SECRET, "FSSPEC_S3_SECRET": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "FSSPEC_S3": json.dumps({"key": "AKIA" + SECRET, "secret": SECRET, "anon": False}),
           "FSSPEC_S3_CLIENT_KWARGS": json.dumps({"aws_secret_access_key": SECRET}),
           "AWS_ENDPOINT_URL": f"http://user:{SECRET}@127.0.0.1:9", "OPENAI_APIKEY": SECRET,
           "AZURE_STORAGE_CONNECTION_STRING": SECRET, "DATABASE_URL": f"postgres://u:{SECRET}@db/x"}
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def test_submit_stop_resume_on_the_cluster_and_read_the_jobs(ray_head, reference, tmp_path):
    from jobs.cluster.submit import job_status, job_stop

    bigger = ("examples.count=8",)  # 56 one-pair tasks: long enough to be stopped midway
    want = reference_arrays(reference, tmp_path, *bigger)
    store = tmp_path / "job.zarr"
    proc = cli("submit", "--address", ray_head, *glob_overrides(reference, store, *bigger), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job_id = proc.stdout.strip().splitlines()[-1]
    # no secret in what the Jobs API shows anyone who can read the dashboard: the job list and the job's info
    from jobs.cluster.submit import job_client

    client = job_client(ray_head)
    as_data = lambda job: job.model_dump() if hasattr(job, "model_dump") else job.dict()  # noqa: E731 - pydantic 2/1
    shown = json.dumps([as_data(j) for j in client.list_jobs()], default=str)
    shown += json.dumps(as_data(client.get_job_info(job_id)), default=str)
    assert job_id in shown and "us-east-1" in shown and SECRET not in shown
    assert "http://127.0.0.1:9" in shown and "not forwarded to the job" in proc.stdout + proc.stderr
    refused = cli("resume", str(store), f"storage.options.secret={SECRET}", "--address", ray_head, cwd=tmp_path)
    assert refused.returncode == 2 and "storage.options.secret holds a credential" in refused.stderr
    assert SECRET not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    deadline = time.monotonic() + 300
    while not ((store / "ledger" / "marks").is_dir() and len(marks_of(store)) >= 3):
        assert time.monotonic() < deadline, cli("job", "logs", job_id, "--address", ray_head, cwd=tmp_path).stdout
        time.sleep(0.05)
    # nor in the job's working directory (config.json) as the cluster unpacked it for the running job
    unpacked = [p for p in Path("/tmp/ray").glob("session_*/runtime_resources/working_dir_files/*/config.json")]
    assert unpacked and not any(SECRET in p.read_text() for p in unpacked)
    assert job_stop(ray_head, job_id)
    for _ in range(240):
        if job_status(ray_head, job_id)["status"] == "STOPPED":
            break
        time.sleep(0.5)
    status = run_cli("job", "status", job_id, "--address", ray_head, cwd=tmp_path)
    assert status.returncode == 0 and "STOPPED" in status.stdout
    assert "of 56 tasks done" in status.stdout                     # the sweep's own progress, from its store
    stopped_at = len(marks_of(store))
    assert 3 <= stopped_at < 56
    done = run_cli("resume", str(store), "--address", ray_head, "--wait", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "job succeeded" in done.stdout
    assert f"{56 - stopped_at} computed now, {stopped_at} already done" in done.stdout
    assert open_sweep(str(store)).complete
    assert_bitwise_equal(brackets_of(store), want)
    resumed = next(line for line in done.stdout.splitlines() if line.startswith("raysubmit_"))
    status = run_cli("job", "status", resumed, "--address", ray_head, "--json", cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "SUCCEEDED"
    logs = run_cli("job", "logs", resumed, "--address", ray_head, cwd=tmp_path)
    assert logs.returncode == 0 and f"{56 - stopped_at} computed now" in logs.stdout


def test_submit_refuses_a_bad_config_before_sending_anything(ray_head, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    proc = run_cli("submit", "--address", ray_head, "--env", "AWS_SECRET_ACCESS_KEY", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--env AWS_SECRET_ACCESS_KEY looks like a secret" in proc.stderr and "--allow-secret-env" in proc.stderr
    proc = run_cli("submit", "--address", ray_head, "pairs.per_task=-1", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("lie-sweep: error: bad value for pairs.per_task")
    unreachable = run_cli("job", "status", "x", "--address", "http://127.0.0.1:9", cwd=tmp_path)
    assert unreachable.returncode == 2 and "Traceback" not in unreachable.stderr


def test_a_users_own_module_travels_to_local_workers_and_to_a_submitted_job(ray_head, local_ray, tmp_path):
    """issue 31, item 8: `model._target_=mymod.Net` works as typed from the folder holding mymod.py, with the
    `lie-sweep` command (no PYTHONPATH), on this machine and as a job on a cluster that ships the module."""
    import shutil

    import torch

    from .servers import BIN

    shutil.copy(Path(__file__).parent / "usercode" / "mymod.py", tmp_path / "mymod.py")
    import importlib.util

    spec = importlib.util.spec_from_file_location("mymod_copy", tmp_path / "mymod.py")
    mm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mm)
    net = mm.Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    x = torch.stack([mm.Blobs()[k][0] for k in range(4)])
    y = torch.tensor([mm.Blobs()[k][1] for k in range(4)])
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    (tmp_path / "ck").mkdir()
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": 1}, tmp_path / "ck" / "a.pt")
    args = ["task=classification", "model._target_=mymod.Net", "model.num_classes=10", "data._target_=mymod.Blobs",
            "checkpoints=glob", f"checkpoints.glob={tmp_path / 'ck'}", "effects=[bracket,swap]", "field=optimizer",
            "examples.count=3", "derived.eval_count=0"]
    env = {k: v for k, v in env_with_venv().items() if k != "PYTHONPATH"}
    planned = subprocess.run([str(BIN / "lie-sweep"), "plan", *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)       # the command itself imports mymod from its folder
    assert planned.returncode == 0 and "classification" in planned.stdout + planned.stderr, planned.stderr[-2000:]
    local = run_cli("run", *args, "storage.path=here", cwd=tmp_path)   # this session's workers import it too
    assert local.returncode == 0, local.stderr[-2000:]
    job = subprocess.run([str(BIN / "lie-sweep"), "submit", "--address", ray_head, "--wait", *args,
                          f"storage.path={tmp_path / 'there'}"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert job.returncode == 0 and "job succeeded" in job.stdout, job.stdout[-2000:] + job.stderr[-2000:]
    here, there = (open_sweep(str(tmp_path / name)) for name in ("here", "there"))
    assert here.complete and there.complete
    assert np.array_equal(np.asarray(here.store.group["brackets"][:]), np.asarray(there.store.group["brackets"][:]))
