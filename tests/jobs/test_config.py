import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jobs.planning.config import identity_of, load_config
from lie_sweep.errors import ConfigError

from .cli_runner import cli_process, run_cli as cli

ROOT = Path(__file__).resolve().parents[2]




def test_default_is_the_demo():
    cfg = load_config()
    assert cfg.model._target_.endswith("SmallConvNet") and cfg.checkpoints.source == "train"
    assert cfg.checkpoints.steps // cfg.checkpoints.save_every == 5 and cfg.examples.count == 8
    assert cfg.pairs.mode == "all"


def test_overrides_groups_and_presets():
    cfg = load_config(["model=mxresnet", "model.widths=[8,16]", "model.depths=[1,1]", "pairs.per_task=5"])
    assert cfg.model._target_.endswith("MXResNet") and list(cfg.model.widths) == [8, 16] and cfg.pairs.per_task == 5
    ref = load_config(["experiment=celeba_mxresnet", "data.root=/somewhere"])
    assert ref.model.num_outputs == 40 and ref.data._target_.endswith("CelebA") and ref.data.root == "/somewhere"


def test_identity_ignores_execution_settings():
    a = identity_of(load_config(["cluster.workers=1", "chunk_size=4", "storage.path=x"]))
    b = identity_of(load_config(["cluster.workers=2", "cluster.max_in_flight=5"]))
    assert a == b
    assert identity_of(load_config(["precision=float64"])) != a
    assert identity_of(load_config(["storage.level=5"])) != a


@pytest.mark.parametrize("override, needle", [
    ("pairs.per_task=abc", "bad value for pairs.per_task"),          # wrong type
    ("model.depthh=3", "unknown key 'model.depthh'"),               # unknown key
    ("+unknown=1", "unknown key 'unknown'"),                         # an addition
    ("pairs.per_task=-4", "bad value for pairs.per_task"),           # negative range size
    ("experiment=celeba_mxresnet", "missing value for data.root"),   # required CelebA path
    ("model=resnet9000", "Could not find 'model/resnet9000'"),
    ("cluster.retries=-1", "bad value for cluster.retries"),
])
def test_config_errors_are_one_line_without_traceback(tmp_path, override, needle):
    proc = cli("run", override, cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    assert needle in err, err
    assert not (tmp_path / "lie-sweep-out").exists()  # nothing was written


def test_a_target_signature_check_catches_unknown_model_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'model.bogus'"):
        # a user's own yaml could carry a typo that Hydra's struct mode does not see
        from jobs.planning import checks as c
        from omegaconf import OmegaConf
        cfg = OmegaConf.create({"model": {"_target_": "lie_sweep.models.SmallConvNet", "bogus": 1}})
        c.check_target(cfg, "model")


def test_help_explains_groups_and_common_overrides(tmp_path):
    out = cli("run", "--help", cwd=tmp_path).stdout
    for word in ("model", "convnet, hf, mlp, mxresnet", "experiment", "celeba_mxresnet", "digits, tiny_lm",
                 "task", "causal_lm", "pairs.per_task", "cluster.address"):
        assert word in out
    assert "run" in cli_process("--help", cwd=tmp_path).stdout


def test_help_prints_each_default_as_yaml():
    from jobs.planning.schema import help_text

    lines = help_text().splitlines()
    for key, shown in (("examples.start", "0"), ("seed", "0"), ("storage.overwrite", "false"),
                       ("derived.eval_start", "null"), ("pairs.per_task", "auto")):
        assert any(line.startswith(f"  {key} = {shown}:") for line in lines), key   # 0 is not "false"


def test_configs_are_found_from_an_installed_wheel(tmp_path):
    src = tmp_path / "src"  # build from a copy: the build leaves files behind in its source tree
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "lie-sweep-out",
                                                             "__pycache__", ".pytest_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("lie_sweep-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "jobs" / "conf" / "experiment" / "demo.yaml").is_file()
    assert {p.name for p in (site / "jobs" / "report" / "assets").iterdir()} == {
        "report.html", "report.css", "report.js", "compare.html", "compare.js"}
    code = ("import jobs.planning.config as c; assert c.__file__.startswith(%r), c.__file__; "
            "print(c.config_dir()); print(c.load_config(['model=mlp']).model._target_)" % str(site))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert str(site / "jobs" / "conf") in proc.stdout and "lie_sweep.models.MLP" in proc.stdout


# options that need a value the user must give (??? in their YAML)
REQUIRED = {"checkpoints=glob": ["checkpoints.glob=runs/*.pt"], "checkpoints=list": ["checkpoints.paths=[a.pt]"],
            "examples=list": ["examples.indices=[0,3]"], "pairs=list": ["pairs.list=[[0,1]]"],
            "pairs=top": ["pairs.top.store=runs/summary"],
            "data=celeba": ["data.root=/data/celeba"], "experiment=celeba_mxresnet": ["data.root=/data/celeba"],
            "data=image_folder": ["data.root=/data/images"]}


def test_every_option_of_every_group_and_every_preset_composes_and_takes_effect():
    from omegaconf import OmegaConf

    from jobs.planning.config import config_dir
    from jobs.planning.schema import GROUP_CLASSES

    root = config_dir()
    options = [f"{group.name}={option.stem}" for group in sorted(p for p in root.iterdir() if p.is_dir())
               for option in sorted(group.glob("*.yaml"))]
    assert len(options) >= 15 and "experiment=celeba_mxresnet" in options
    for override in options:
        group, option = override.split("=")
        cfg = load_config([override, *REQUIRED.get(override, [])])
        written = OmegaConf.to_container(OmegaConf.load(root / group / f"{option}.yaml") or OmegaConf.create({}))
        if group == "experiment":                     # a preset only overrides: its keys are in the result
            for key in ("model", "data", "checkpoints", "examples", "pairs"):
                for k, v in (written.get(key) or {}).items():
                    assert OmegaConf.select(cfg, f"{key}.{k}") == v, (override, key, k)
            assert "defaults" not in written or all("override" in str(d) for d in written["defaults"])
            continue
        for key, value in written.items():            # the option's keys are what the config holds
            assert OmegaConf.select(cfg, f"{group}.{key}") == value or value == "???", (override, key)
        if group in GROUP_CLASSES:                    # and they hold only what differs from the schema
            defaults = OmegaConf.structured(GROUP_CLASSES[group])
            same = [k for k, v in written.items() if k in defaults and defaults[k] == v and k not in ("mode",)]
            assert same in ([], ["source"], ["name"]) or (group, same) == ("pairs", []), (override, same)


def test_registry_groups_have_an_option_per_registered_choice():
    from omegaconf import OmegaConf

    from jobs.planning.config import REGISTRY_GROUPS, group_options

    assert group_options("pairs")[:5] == ["all", "cross", "tournament", "top", "list"]   # (+ tests' toy grids)
    assert group_options("field")[:3] == ["sgd", "adam", "optimizer"]
    for group, (registry, key) in REGISTRY_GROUPS.items():
        for option in registry:
            override = f"{group}={option}"
            cfg = load_config([override, *REQUIRED.get(override, [])])
            assert OmegaConf.select(cfg, f"{group}.{key}") == option, override
    with pytest.raises(ConfigError, match="pairs.list"):
        load_config(["pairs=list"])


def test_the_demo_preset_restates_no_default():
    from omegaconf import OmegaConf

    from jobs.planning.config import config_dir

    demo = OmegaConf.to_container(OmegaConf.load(config_dir() / "experiment" / "demo.yaml"))
    assert demo == {"pairs": {"per_task": 7}}
    assert load_config(["checkpoints.steps=60"]).checkpoints.steps == 60   # a group's own value is not masked


def test_near_miss_keys_and_group_options_are_named():
    for override, needle in (("model.widht=8", "did you mean model.width?"),
                             ("exampels.count=3", "did you mean examples.count?"),
                             ("model=resnet", "unknown model option 'resnet'; expected convnet | hf | mlp | mxresnet"),
                             ("pairs=tournamnet", "set pairs=tournament")):
        with pytest.raises(ConfigError) as caught:
            load_config([override])
        assert needle in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
