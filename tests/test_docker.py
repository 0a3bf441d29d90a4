"""docker/: the compose file and KubeRay manifests parse, and every command, path and version they
name exists in the package. (The image itself cannot be built here: no Docker engine.)"""

import re
import shlex
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from jobs.cli import build_parser
from jobs.planning.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def pyproject_requirement(name: str) -> Requirement:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in deps if Requirement(d).name == name)


def dockerfile_arg(name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)", (DOCKER / "Dockerfile").read_text(), re.M).group(1)


def check_lie_sweep_command(line: str) -> None:
    """`lie-sweep SUB ...` parses with the real CLI, and its overrides compose into a valid config."""
    words = shlex.split(line)
    assert words[0] == "lie-sweep", line
    args = build_parser().parse_args(words[1:])
    if args.command in ("run", "submit"):
        load_config([o for o in args.overrides if not o.startswith("cluster.address=")]
                    + [o for o in args.overrides if o.startswith("cluster.address=")])


def check_ray_start(line: str) -> None:
    words = shlex.split(line)
    assert words[:2] == ["ray", "start"] and "--block" in words, line


def test_dockerfile_copies_what_exists_and_pins_a_ray_the_package_accepts():
    text = (DOCKER / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in shlex.split(line)[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    ray_version = dockerfile_arg("RAY_VERSION")
    assert pyproject_requirement("ray").specifier.contains(ray_version)
    assert 'ray[default]==${RAY_VERSION}' in text and "torch==${TORCH_VERSION}" in text
    tested = re.search(r"torch==(\S+)", (ROOT / "README.md").read_text().split("<!-- test-command -->")[1]).group(1)
    assert dockerfile_arg("TORCH_VERSION") == tested            # the image runs the torch the tests run
    assert 'pip install --no-cache-dir ".[celeba]"' in text


def test_compose_starts_a_head_and_two_workers_sharing_a_store_volume():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"head", "worker-1", "worker-2"}
    build = services["head"]["build"]
    assert build["args"]["BASE_SUFFIX"] == "" and "/whl/cpu" in build["args"]["TORCH_INDEX"]   # a CPU cluster
    assert all(svc["image"].endswith("-cpu") for svc in services.values())
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == (DOCKER / "Dockerfile").resolve()
    for name, svc in services.items():
        check_ray_start(svc["command"])
        assert "stores:/stores" in svc["volumes"], name
        if name != "head":
            assert "--address=head:6379" in svc["command"]
    assert "stores" in compose["volumes"]
    assert any("8265:8265" in p for p in services["head"]["ports"])
    for line in (DOCKER / "compose.yaml").read_text().splitlines():
        if line.startswith("#   lie-sweep "):
            check_lie_sweep_command(line[4:].split("   (")[0])


@pytest.mark.parametrize("manifest", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_manifests_name_real_commands_images_and_versions(manifest):
    doc = yaml.safe_load((DOCKER / "kuberay" / manifest).read_text())
    assert doc["apiVersion"] == "ray.io/v1"
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert doc["kind"] in ("RayCluster", "RayJob")
    assert spec["rayVersion"] == dockerfile_arg("RAY_VERSION")
    image = re.search(r"-t (\S+) ", (DOCKER / "Dockerfile").read_text()).group(1)
    containers = [spec["headGroupSpec"]["template"]["spec"]["containers"][0]]
    containers += [g["template"]["spec"]["containers"][0] for g in spec["workerGroupSpecs"]]
    assert all(c["image"] == image for c in containers)
    # credentials by Kubernetes Secret, the only way they reach a cluster (never a job's runtime environment)
    assert all({"name": "lie-sweep-s3"}.items() <= c["envFrom"][0]["secretRef"].items() for c in containers)
    for group in spec["workerGroupSpecs"]:
        gpus = group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        assert int(group["rayStartParams"]["num-gpus"]) == gpus >= 1
    if doc["kind"] == "RayJob":
        check_lie_sweep_command(doc["spec"]["entrypoint"])
    for line in (DOCKER / "kuberay" / manifest).read_text().splitlines():
        if line.startswith("#   lie-sweep "):
            text = line[4:].rstrip("\\").strip()
            nxt = (DOCKER / "kuberay" / manifest).read_text().splitlines()
            idx = nxt.index(line)
            while nxt[idx].rstrip().endswith("\\"):
                idx += 1
                text += " " + nxt[idx].lstrip("# ").rstrip("\\").strip()
            check_lie_sweep_command(text)
