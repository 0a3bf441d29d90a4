"""Any model, any task (issue 31): a user's own classifier, regression and language model, the checkpoints people
already have (a tutorial's dict, Lightning, the Hugging Face Trainer), run through the command line as typed
from the folder that holds `mymod.py`, each stored number against an independent float64 reference."""

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from jobs.execution.account import pairs_line
from lie_sweep import open_sweep
from lie_sweep.errors import ConfigError

from .cli_runner import run_cli as cli
from .test_bad_inputs import assert_one_line

pytestmark = pytest.mark.slow
USERCODE = Path(__file__).parent / "usercode"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A researcher's folder: mymod.py beside the checkpoints they trained."""
    where = tmp_path_factory.mktemp("research")
    shutil.copy(USERCODE / "mymod.py", where / "mymod.py")
    return where


def mymod(folder):
    import importlib
    import sys

    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    return importlib.import_module("mymod")


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def double_backward(model, loss_of, pairs):
    """[u_i, u_j] = H_j g_i − H_i g_j by double backward through autograd (no torch.func, no kernel), flat."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]

    def grad_of(k, create_graph):
        return torch.autograd.grad(loss_of(model, k), params, create_graph=create_graph)

    rows = []
    for i, j in pairs:
        gi, gj = ([t.detach() for t in grad_of(k, False)] for k in (i, j))
        rows.append(flat(torch.autograd.grad(grad_of(j, True), params, grad_outputs=gi))
                    - flat(torch.autograd.grad(grad_of(i, True), params, grad_outputs=gj)))
    return torch.stack(rows)


def torch_orders(model, optimizer_of, loss_of, i, j):
    """The models after two steps of a real torch.optim optimizer on i then j and on j then i
    (``optimizer_of(model)`` rebuilds it from the saved state)."""
    ends = []
    for order in ((i, j), (j, i)):
        m = copy.deepcopy(model).eval()
        opt = optimizer_of(m)
        for k in order:
            opt.zero_grad()
            loss_of(m, k).backward()
            opt.step()
        ends.append(m)
    return ends


def torch_swap(model, optimizer_of, loss_of, i, j):
    """θ_ij − θ_ji by :func:`torch_orders`, flat, float64."""
    ij, ji = (flat([p.detach() for p in m.parameters()]) for m in torch_orders(model, optimizer_of, loss_of, i, j))
    return ij - ji


# --- a classifier: a tutorial's {model_state_dict, optimizer_state_dict} and a Lightning .ckpt -----------------
@pytest.fixture(scope="module")
def classifier_store(folder, local_ray):
    mm = mymod(folder)
    data = mm.Blobs()
    ck = folder / "ck"
    ck.mkdir()
    torch.manual_seed(0)
    net = mm.Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for step in range(2):
        x = torch.stack([data[k][0] for k in range(8)])
        y = torch.tensor([data[k][1] for k in range(8)])
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    torch.save({"model_state_dict": net.state_dict(), "optimizer_state_dict": opt.state_dict(), "step": 2},
               ck / "tutorial.pt")
    import lightning as L

    loader = torch.utils.data.DataLoader([data[k] for k in range(16)], batch_size=4)
    trainer = L.Trainer(max_steps=4, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=str(folder / "lightning"), accelerator="cpu")
    torch.manual_seed(1)
    trainer.fit(mm.lightning_module(), loader)
    trainer.save_checkpoint(str(ck / "lit.ckpt"))
    proc = cli("run", "task=classification", "model._target_=mymod.Net", "model.num_classes=10",
               "data._target_=mymod.Blobs", "checkpoints=glob", f"checkpoints.glob={ck}", "effects=[bracket,swap]",
               "field=optimizer", "precision=float64", "examples.count=4", "derived.eval_count=3",
               "storage.path=classifier", cwd=folder)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return folder / "classifier"


def test_a_classifier_from_tutorial_and_lightning_checkpoints_is_cross_entropy_and_their_own_adam(classifier_store,
                                                                                                  folder):
    mm = mymod(folder)
    sweep = open_sweep(str(classifier_store))
    assert sweep.steps == [2, 4] and sweep.config["task"]["name"] == "classification"
    assert sweep.output_names == [f"class_{k}" for k in range(10)]
    data = mm.Blobs()
    x = torch.stack([data[k][0] for k in sweep.examples]).double()
    y = torch.tensor([data[k][1] for k in sweep.examples])
    pos = {e: k for k, e in enumerate(sweep.examples)}
    pairs = [(pos[int(i)], pos[int(j)]) for i, j in sweep.pairs]

    def loss_of(model, k):
        return torch.nn.functional.cross_entropy(model(x[k:k + 1]), y[k:k + 1])

    losses = sweep.example_table()
    for c, prov in enumerate(sweep.meta.checkpoints):
        saved = torch.load(prov["path"], weights_only=True)
        if prov["path"].endswith(".ckpt"):  # Lightning: the module prefix, optimizer_states[0], global_step
            state = {k[len("model."):]: v for k, v in saved["state_dict"].items()}
            opt_state = saved["optimizer_states"][0]
        else:
            state, opt_state = saved["model_state_dict"], saved["optimizer_state_dict"]
        model = mm.Net().double()
        model.load_state_dict(state)
        model.eval()
        want = double_backward(model, loss_of, pairs).numpy()
        got = np.stack([np.concatenate([np.asarray(v).reshape(-1) for v in sweep.bracket(sweep.steps[c], int(i),
                                                                                          int(j)).values()])
                        for i, j in sweep.pairs])
        assert rel(got, want) <= 1e-10, (prov["path"], rel(got, want))
        step_losses = losses[losses.step == sweep.steps[c]].set_index("example").loss
        with torch.no_grad():
            ce = [float(loss_of(model, k)) for k in range(len(sweep.examples))]
        np.testing.assert_allclose(step_losses.loc[sweep.examples].to_numpy(), ce, rtol=1e-12)

        def optimizer_of(m):
            opt = torch.optim.Adam(m.parameters(), lr=0.01)
            opt.load_state_dict(copy.deepcopy(opt_state))
            return opt
        lr = opt_state["param_groups"][0]["lr"]
        assert sweep.swap_epsilons == [lr]
        for i, j in sweep.pairs[:3]:
            ref = torch_swap(model, optimizer_of, loss_of, pos[int(i)], pos[int(j)]).numpy()
            stored = np.concatenate([np.asarray(v).reshape(-1) for v in sweep.swap(sweep.steps[c], int(i),
                                                                                   int(j)).values()])
            assert rel(stored, ref) <= 1e-10, (prov["path"], i, j, rel(stored, ref))


def test_show_report_and_resume_follow_the_classifiers_task(classifier_store, folder):
    shown = cli("show", str(classifier_store), cwd=folder)
    assert shown.returncode == 0 and "task         classification: cross-entropy" in shown.stdout
    assert "class_" in shown.stdout
    ledger = open_sweep(str(classifier_store)).store.ledger
    ledger.clear_mark(0)
    resumed = cli("resume", str(classifier_store), "model._target_=mymod.Net", "data._target_=mymod.Blobs",
                  cwd=folder)
    assert resumed.returncode == 0 and "1 computed now" in resumed.stdout, resumed.stderr
    report = cli("report", str(classifier_store), "--trust-store", cwd=folder)   # mymod's images, thumbnails
    assert report.returncode == 0 and "--trust-store: importing data._target_ mymod.Blobs" in report.stdout


# --- a regression ------------------------------------------------------------------------------------------------
def test_a_regression_is_mean_squared_error(folder, local_ray):
    mm = mymod(folder)
    proc = cli("run", "task=regression", "model=mlp", "model.input_shape=[4]", "model.num_outputs=1",
               "model.hidden=[6]", "model.activation_name=tanh", "data._target_=mymod.Sine", "checkpoints.steps=3",
               "checkpoints.save_every=3", f"checkpoints.dir={folder / 'reg-ck'}", "precision=float64",
               "examples.count=4", "derived.eval_count=2", "storage.path=regression", cwd=folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = open_sweep(str(folder / "regression"))
    from lie_sweep.models import MLP

    model = MLP(input_shape=[4], num_outputs=1, hidden=[6], activation_name="tanh").double()
    saved = torch.load(sweep.meta.checkpoints[0]["path"], weights_only=True)
    model.load_state_dict(saved["model"])
    data = mm.Sine()
    x = torch.stack([data[k][0] for k in sweep.examples]).double()
    y = torch.stack([data[k][1] for k in sweep.examples]).double()
    pos = {e: k for k, e in enumerate(sweep.examples)}

    def loss_of(m, k):
        return ((m(x[k:k + 1]) - y[k:k + 1]) ** 2).mean()

    want = double_backward(model, loss_of, [(pos[int(i)], pos[int(j)]) for i, j in sweep.pairs]).numpy()
    got = np.stack([np.concatenate([np.asarray(v).reshape(-1) for v in sweep.bracket(sweep.steps[0], int(i),
                                                                                      int(j)).values()])
                    for i, j in sweep.pairs])
    assert rel(got, want) <= 1e-10
    assert sweep.output_names == ["output_0"]


# --- a Hugging Face causal LM trained with the Trainer ---------------------------------------------------------
@pytest.fixture(scope="module")
def trainer_run(folder):
    pytest.importorskip("transformers")
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    mm = mymod(folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
                        eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    args = TrainingArguments(output_dir=str(folder / "run"), max_steps=10, save_steps=5,
                             per_device_train_batch_size=4, learning_rate=3e-3, weight_decay=0.1, report_to=[],
                             use_cpu=True, logging_steps=100, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=mm.Sequences()).train()
    model.save_pretrained(str(folder / "saved"))
    return folder / "run"


def test_save_pretrained_drops_tied_weights_and_they_are_restored(trainer_run, folder):
    from lie_sweep import apply_checkpoint, load_checkpoint
    from lie_sweep.hf import PretrainedModel

    ck = load_checkpoint(folder / "saved")
    assert "lm_head.weight" not in ck.model_state                  # save_pretrained drops the tied copy
    model = PretrainedModel(path=str(folder / "saved"))
    apply_checkpoint(model, ck)
    assert torch.equal(model.lm_head.weight, ck.model_state["transformer.wte.weight"])


@pytest.fixture(scope="module")
def lm_store(trainer_run, folder, local_ray):
    proc = cli("run", "task=causal_lm", "model=hf", f"model.path={trainer_run / 'checkpoint-5'}",
               "data._target_=mymod.Sequences", "checkpoints=glob", f"checkpoints.glob={trainer_run}/checkpoint-*",
               "effects=[bracket,swap]", "field=optimizer", "swap_epsilon=0.001", "precision=float64",
               "examples.start=2",
               "examples.count=3", "derived.eval_count=2", "storage.path=lm", cwd=folder)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return folder / "lm"


def test_a_trainer_directory_sweeps_next_token_loss_under_its_own_adamw(lm_store, trainer_run, folder):
    from transformers import GPT2LMHeadModel, Trainer

    mm = mymod(folder)
    sweep = open_sweep(str(lm_store))
    assert sweep.steps == [5, 10]                                      # by step, not by the names' string order
    data = mm.Sequences()
    items = [data[k] for k in sweep.examples]
    x = torch.stack([it["input_ids"] for it in items])
    y = torch.stack([torch.where(it["attention_mask"].bool(), it["labels"], -100) for it in items])
    assert (y == -100).any()                                           # example 3 is right padded

    def next_token_loss(m, k):
        logits = m(x[k:k + 1]).logits[:, :-1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[k:k + 1, 1:].reshape(-1),
                                                 ignore_index=-100)

    pos = {e: k for k, e in enumerate(sweep.examples)}
    for c, step in enumerate(sweep.steps):
        where = trainer_run / f"checkpoint-{step}"
        model = GPT2LMHeadModel.from_pretrained(str(where), attn_implementation="eager").double().eval()
        want = double_backward(model, next_token_loss, [(pos[int(i)], pos[int(j)]) for i, j in sweep.pairs]).numpy()
        names = [n for n, _ in model.named_parameters()]
        got = np.stack([np.concatenate([np.asarray(sweep.bracket(step, int(i), int(j))[n]).reshape(-1)
                                        for n in names]) for i, j in sweep.pairs])
        assert rel(got, want) <= 1e-10, (step, rel(got, want))
        saved = torch.load(where / "optimizer.pt", weights_only=True)

        def optimizer_of(m):   # the Trainer's own two groups (decay, no decay), rebuilt as the Trainer builds them
            decay = set(Trainer.get_decay_parameter_names(None, m))
            groups = [{"params": [p for n, p in m.named_parameters() if n in decay]},
                      {"params": [p for n, p in m.named_parameters() if n not in decay]}]
            opt = torch.optim.AdamW(groups)
            opt.load_state_dict(copy.deepcopy(saved))
            for group in opt.param_groups:   # the swap's step size (the schedule has decayed to 0 at step 10)
                group["lr"] = 0.001
            return opt
        for i, j in sweep.pairs:
            ref = torch_swap(model, optimizer_of, next_token_loss, pos[int(i)], pos[int(j)]).numpy()
            stored = np.concatenate([np.asarray(sweep.swap(step, int(i), int(j))[n]).reshape(-1) for n in names])
            assert rel(stored, ref) <= 1e-10, (step, i, j, rel(stored, ref))
        # the exact swap's measurement: each evaluation sequence's log p(true next token), after real swaps
        ev = [data[k] for k in sweep.eval_examples]
        ex = torch.stack([it["input_ids"] for it in ev])
        ey = torch.stack([torch.where(it["attention_mask"].bool(), it["labels"], -100) for it in ev])
        i, j = (int(v) for v in sweep.pairs[0])
        ends = []
        for m in torch_orders(model, optimizer_of, next_token_loss, pos[i], pos[j]):
            with torch.no_grad():
                logp = torch.log_softmax(m(ex).logits[:, :-1], -1)
                picked = torch.gather(logp, -1, ey[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
                ends.append((picked * (ey[:, 1:] != -100)).numpy())
        stored = np.asarray(sweep.swap_logit_deltas().sel(step=step, i=i, j=j).values, dtype=np.float64)[0]
        assert rel(stored, ends[0] - ends[1]) <= 1e-9
    assert sweep.output_names == [f"t{k}" for k in range(1, 12)]


# --- the checks that come before anything is stored ----------------------------------------------------------
def test_model_data_and_task_mismatches_are_one_line_before_a_store_exists(folder):
    for args, needle in (
            (["model=mxresnet", "model.num_outputs=40"], "the model's outputs do not match the data's attributes"),
            (["task=classification", "model._target_=mymod.Net", "model.num_classes=3",
              "data._target_=mymod.Blobs"], "a class label beyond the model's classes"),
            (["model=mlp", "model.input_shape=[4]", "model.num_outputs=1", "data._target_=mymod.Sine"],
             "real-valued targets under task=multilabel"),
            (["task=classification", "data._target_=mymod.Blobs", "model=null"], "leaves the sweep without a model")):
        for command in ("plan", "run"):
            assert_one_line(cli(command, *args, "storage.path=never", cwd=folder), needle)
    assert not (folder / "never").exists() and not (folder / "lie-sweep-out").exists()


def test_a_users_class_gets_exactly_the_keys_given_and_an_all_failed_run_says_so(folder):
    from jobs.execution.driver import RunReport
    from jobs.planning.config import load_config

    mymod(folder)
    cfg = load_config(["model._target_=mymod.Net", "model.num_classes=10", "~data.seed"])
    assert dict(cfg.model) == {"_target_": "mymod.Net", "num_classes": 10} and "seed" not in cfg.data
    with pytest.raises(ConfigError, match="did you mean model.num_classes"):
        load_config(["model._target_=mymod.Net", "model.num_clases=10"])

    line = pairs_line(RunReport(failures=[{"error": "boom: the model raised"}]), rate=0.0)
    assert "every task to run failed (1; the first: boom: the model raised)" in line


def test_optimizer_state_is_matched_by_name_or_checked_shape_never_by_position_alone():
    from lie_sweep.optim_names import name_optimizer_state

    shapes = {"a.weight": (3, 2), "a.bias": (3,), "b.weight": (1, 3), "b.bias": (1,)}

    def state(shape_by_index, groups):
        return {"state": {k: {"exp_avg": torch.zeros(s), "exp_avg_sq": torch.zeros(s), "step": torch.tensor(1.)}
                          for k, s in shape_by_index.items()},
                "param_groups": [{"params": g, "lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0}
                                 for g in groups]}
    named = name_optimizer_state(state({0: (3, 2), 1: (3,), 2: (1, 3), 3: (1,)}, [[0, 1, 2, 3]]), shapes)
    assert named["param_groups"][0]["param_names"] == list(shapes)                      # positions, shapes checked
    trainer = state({0: (3, 2), 1: (1, 3), 2: (3,), 3: (1,)}, [[0, 1], [2, 3]])         # decay / no-decay groups
    assert [g["param_names"] for g in name_optimizer_state(trainer, shapes)["param_groups"]] == \
        [["a.weight", "b.weight"], ["a.bias", "b.bias"]]
    lightning = state({0: (3, 2), 1: (3,), 2: (1, 3), 3: (1,)}, [[0, 1, 2, 3]])
    lightning["param_groups"][0]["param_names"] = [f"model.{n}" for n in shapes]
    assert name_optimizer_state(lightning, shapes, prefix="model.")["param_groups"][0]["param_names"] == list(shapes)
    with pytest.raises(ConfigError, match="has shape"):
        name_optimizer_state(state({0: (3,), 1: (3, 2), 2: (1, 3), 3: (1,)}, [[0, 1, 2, 3]]), shapes)
    twice = {"a": (2,), "b": (3,), "c": (2,), "d": (2,)}   # groups {a, c | b, d} and {a, d | b, c} both fit
    with pytest.raises(ConfigError, match="more than one split of the model's parameters"):
        name_optimizer_state(state({0: (2,), 1: (2,), 2: (3,), 3: (2,)}, [[0, 1], [2, 3]]), twice)
