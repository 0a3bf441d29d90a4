"""What travels with a Ray job holds no credential (issue 30, item 4): the environment is an allowlist with values
inspected, secret-looking names are refused, storage options holding credentials never leave this machine."""

import json

import pytest

from jobs.cluster.credentials import credential_options, forwarded_env, refuse_credential_options, without_credentials
from lie_sweep.errors import ConfigError

CANARY = "canary-5f1d"


def test_the_forwarded_environment_is_an_allowlist_with_credentials_taken_out_of_its_values(monkeypatch):
    monkeypatch.setenv("FSSPEC_S3", json.dumps({"key": "AKIA" + CANARY, "secret": CANARY,
                                                "endpoint_url": "http://127.0.0.1:9000"}))
    monkeypatch.setenv("FSSPEC_S3_CLIENT_KWARGS", json.dumps({"aws_secret_access_key": CANARY}))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{CANARY}@minio:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("OPENAI_APIKEY", "AZURE_STORAGE_CONNECTION_STRING", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, CANARY)
    said = []
    env = forwarded_env(log=said.append)
    assert CANARY not in json.dumps(env) and CANARY not in " ".join(said)
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1" and env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert json.loads(env["FSSPEC_S3"]) == {"endpoint_url": "http://127.0.0.1:9000"}   # what is not a secret stays
    assert "FSSPEC_S3_CLIENT_KWARGS" not in env                                          # nothing else was in it
    assert len(said) == 3 and all("not forwarded to the job" in line for line in said)
    for name in ("OPENAI_APIKEY", "AZURE_STORAGE_CONNECTION_STRING", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
        with pytest.raises(ConfigError, match=f"--env {name} looks like a secret"):
            forwarded_env([name])
        assert forwarded_env([name], allow_secrets=True)[name] == CANARY
    monkeypatch.setenv("MY_ENDPOINT", f"https://u:{CANARY}@host")            # a harmless name, a credential inside
    with pytest.raises(ConfigError, match="a URL with user info"):
        forwarded_env(["MY_ENDPOINT"])


def test_storage_options_holding_credentials_are_refused():
    assert credential_options({"anon": False, "endpoint_url": "http://h:9000", "client_kwargs": {"region_name": "x"}}) \
        == []
    held = credential_options({"secret": CANARY, "client_kwargs": {"aws_secret_access_key": CANARY},
                               "endpoint_url": f"http://u:{CANARY}@h", "token": CANARY})
    assert held == ["storage.options.secret", "storage.options.client_kwargs.aws_secret_access_key",
                    "storage.options.endpoint_url", "storage.options.token"]
    with pytest.raises(ConfigError, match="storage.options.secret holds a credential") as info:
        refuse_credential_options({"secret": CANARY})
    assert CANARY not in str(info.value)
    assert without_credentials(json.dumps({"token": CANARY})) == ""
