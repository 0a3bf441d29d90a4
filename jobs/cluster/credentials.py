"""What may travel with a Ray job, and what never does: credentials.

A job's runtime environment, entrypoint and working directory are readable by anyone who can read the Ray
dashboard (``GET /api/jobs/``, the job's package in the cluster's storage), so no credential is put in
them. Credentials reach the workers from the cluster side: the Ray nodes' own environment, a Kubernetes
Secret (``docker/kuberay/``), an instance role.

* The environment a job carries is an allowlist of settings known not to be secrets (:data:`PASS_ENV`, and
  ``FSSPEC_*`` settings whose names do not look like secrets), with every value inspected: a URL's user
  info (``http://user:password@host``) is removed, a JSON value loses every field whose name looks like a
  credential (``key``, ``secret``, ``token``, ``password``, ``aws_secret_access_key``, …), and a value
  left empty is not forwarded.
* Names asked for with ``submit --env NAME`` that look like secrets (:data:`SECRET_NAME`: passwords,
  tokens, API keys, connection strings, database URLs, …), or whose values hold a credential, are refused
  in one line unless ``--allow-secret-env``.
* ``storage.options`` keys that hold credentials (:func:`credential_options`) are refused in one line
  before anything is submitted: they would enter the entrypoint (``resume``) or ``config.json``
  (``submit``).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from lie_sweep.errors import ConfigError

__all__ = ["PASS_ENV", "SECRET_NAME", "forwarded_env", "credential_in", "without_credentials", "credential_options",
           "refuse_credential_options"]

# environment passed on to a job: Ray's local settings and where object stores are (values inspected)
PASS_ENV = ("RAY_USAGE_STATS_ENABLED", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
# names (of variables, of option keys, of JSON fields) that look like secrets
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|PASSPHRASE|_PWD|PRIVATE|CREDENTIAL|ACCESS_KEY|API_?KEY|AUTH|COOKIE|"
                         r"SESSION|SIGNATURE|SAS|CONN(ECTION)?_?STR|DATABASE_URL|DB_URL|DSN|(^|_)KEY($|_)",
                         re.IGNORECASE)
_FIX = ("give the cluster its credentials from its own side (the nodes' environment, a Kubernetes Secret: "
        "docker/kuberay/, an instance role)")


def _user_info(text: str) -> bool:
    """Whether ``text`` is a URL carrying user info (``scheme://user[:password]@host``)."""
    if "://" not in text:
        return False
    try:
        return "@" in urlsplit(text.strip()).netloc
    except ValueError:
        return False


def _without_user_info(text: str) -> str:
    parts = urlsplit(text.strip())
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _credential_fields(value: Any, path: str = "") -> list[str]:
    """The dotted names of the fields of a JSON-like value that look like credentials or hold one."""
    found = []
    if isinstance(value, Mapping):
        for key, sub in value.items():
            dotted = f"{path}.{key}" if path else str(key)
            if SECRET_NAME.search(str(key)) or (isinstance(sub, str) and _user_info(sub)):
                found.append(dotted)
            else:
                found += _credential_fields(sub, dotted)
    elif isinstance(value, (list, tuple)):
        for k, sub in enumerate(value):
            found += _credential_fields(sub, f"{path}[{k}]")
    return found


def _json_of(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def credential_in(value: str) -> str | None:
    """What credential ``value`` holds (a URL with user info, JSON with credential fields), or None."""
    if _user_info(value):
        return "a URL with user info"
    fields = _credential_fields(_json_of(value))
    return f"JSON with {', '.join(fields[:3])}" if fields else None


def without_credentials(value: str) -> str:
    """``value`` with its credentials removed: a URL's user info, a JSON value's credential fields ("" when
    nothing is left)."""
    if _user_info(value):
        return _without_user_info(value)
    data = _json_of(value)
    if not _credential_fields(data):
        return value

    def strip(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return {k: strip(v) for k, v in obj.items() if not (SECRET_NAME.search(str(k)) or (
                isinstance(v, str) and _user_info(v)))}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    stripped = strip(data)
    return json.dumps(stripped) if stripped not in ({}, [], None) else ""


def forwarded_env(names: Sequence[str] = (), allow_secrets: bool = False,
                  log: Callable[[str], None] | None = None) -> dict[str, str]:
    """The variables a job's runtime environment carries (see the module docstring): :data:`PASS_ENV` and
    ``FSSPEC_*`` settings set here, their credentials removed (``log`` says which were), and ``names``
    (``submit --env NAME``), refused in one line when a name looks like a secret or a value holds a credential,
    unless ``allow_secrets``."""
    out: dict[str, str] = {}
    for name in [k for k in os.environ if k in PASS_ENV or (k.startswith("FSSPEC_") and not SECRET_NAME.search(k))]:
        value = without_credentials(os.environ[name])
        if value != os.environ[name] and log is not None:
            log(f"not forwarded to the job: the credentials in {name} ({credential_in(os.environ[name])}); {_FIX}")
        if value:
            out[name] = value
    for name in names:
        if name not in os.environ:
            raise ConfigError(f"--env {name} is not set here", expected="a variable of this shell to forward",
                              found="unset", fix=f"export {name}=... first, or drop --env {name}")
        held = "its name" if SECRET_NAME.search(name) else credential_in(os.environ[name])
        if held and not allow_secrets:
            raise ConfigError(f"--env {name} looks like a secret", expected="a variable whose value the Ray "
                              "dashboard may show to anyone who can read it", found=f"{name} ({held})",
                              fix=f"{_FIX}, or pass --allow-secret-env to forward it anyway")
        out[name] = os.environ[name]
    return out


def credential_options(options: Mapping[str, Any]) -> list[str]:
    """The ``storage.options`` keys (dotted) whose names look like credentials or whose values hold one."""
    found = _credential_fields(dict(options))
    found += [k for k, v in options.items() if isinstance(v, str) and k not in found and credential_in(v)]  # JSON text
    return [f"storage.options.{k}" for k in found]


def refuse_credential_options(options: Mapping[str, Any]) -> None:
    """One error line when ``storage.options`` holds a credential that would travel with a job."""
    held = credential_options(options)
    if held:
        raise ConfigError(f"{held[0]} holds a credential, which would travel with the job", expected="storage "
                          "options without credentials (the dashboard shows a job's entrypoint and files)",
                          found=", ".join(held[:3]), fix=f"drop {held[0]}=... here and {_FIX}")
