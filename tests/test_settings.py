"""Settings declared once, resolved once and recorded as they are: derived seeds, method options and
presets beside each method, deviations from the paper's whole recipe, recipe keys, fingerprints and
dry runs."""

import json
import random
import string

import mlflow
import pytest
import torch
import yaml

from cinv import settings
from cinv.commands import CONFIGS as COMMANDS
from cinv.config import ConfigError
from cinv.config.base import PRESET_NAMES, class_presets, flat_fields
from cinv.methods import METHODS
from cinv.runtime import Autocast, derive_seed
from cinv.settings import build, deviations, paper_recipe, registered_methods
from conftest import ROOT, run_cli, write_image_folder


def test_derive_seed_hashes_the_whole_key():
    assert derive_seed(0, "probe") != derive_seed(0, "probe head")  # the first 4 bytes used to decide
    assert derive_seed(0, 1) != derive_seed(0, "1") and derive_seed(1, 23) != derive_seed(12, 3)
    rng = random.Random(0)
    purposes = {"".join(rng.choices(string.ascii_lowercase + " _", k=rng.randint(1, 24))) for _ in range(5000)}
    seeds = {derive_seed(7, purpose) for purpose in purposes}
    assert len(seeds) == len(purposes)  # no collision among thousands of purposes
    assert all(0 <= seed < 2**63 for seed in seeds) and derive_seed(7, "probe") == derive_seed(7, "probe")


# ---- each method's options, in every command that runs methods ------------------------------

RUNS_METHODS = {"main": {"methods": "student, rocl"}, "experiment": {"methods": "rocl"},
                "benchmark": {"methods": "student, rocl"}, "tune": {"method": "rocl"}}


@pytest.mark.parametrize("command", sorted(RUNS_METHODS))
def test_every_command_that_runs_methods_takes_every_methods_options(command):
    config = build(COMMANDS[command], {**RUNS_METHODS[command], "rocl_epochs": "2", "rocl_temperature": "0.3"})
    assert (config.options["rocl"].epochs, config.options["rocl"].temperature) == (2, 0.3)
    assert config.options["rocl"].lr == METHODS.get("rocl").PRESETS["cpu"]["lr"]  # the rest from the preset, not a class default
    with pytest.raises(ConfigError, match="fcl_epochs: this run does not use method fcl"):
        build(COMMANDS[command], {**RUNS_METHODS[command], "fcl_epochs": "2"})  # never silently ignored


def test_a_methods_options_come_from_its_presets_beside_it():
    """The student's epochs are declared once (its PRESETS); main, experiment and tune read them."""
    for command in ("main", "experiment", "tune", "student"):
        for preset in PRESET_NAMES:
            student = build(COMMANDS[command], {"preset": preset}).options["student"]
            assert student.epochs == METHODS.get("student").PRESETS[preset]["epochs"], (command, preset)
    rocl = {command: build(COMMANDS[command], {**RUNS_METHODS.get(command, {}), "image_size": "32"}).options["rocl"]
            for command in ("rocl", "benchmark", "tune", "experiment")}
    assert len({opts.model_dump_json() for opts in rocl.values()}) == 1  # one CPU budget for RoCL, whatever the command


def test_the_methods_a_run_compares_are_the_ones_whose_options_it_takes():
    experiment = COMMANDS["experiment"]
    assert build(experiment, {"name": "imagenet_c", "methods": "student"}).compared() == ["student"]
    assert set(build(experiment, {"name": "loss_ablation"}).options) == {"teacher", "student"}
    with pytest.raises(ConfigError, match="methods: loss_ablation has fixed cells"):
        build(experiment, {"name": "loss_ablation", "methods": "baseline"})  # never silently ignored
    main = build(COMMANDS["main"], {"methods": ""})  # the teacher's rows alone
    assert main.compared() == [] and set(main.options) == {"teacher"}


def test_old_method_names_stay_as_aliases():
    assert type(METHODS.get("contrastive_inversion")) is type(METHODS.get("student"))
    assert type(METHODS.get("supervised_baseline")) is type(METHODS.get("baseline"))
    assert "contrastive_inversion" not in METHODS.names()
    config = build(COMMANDS["main"], {"methods": "contrastive_inversion, supervised_baseline"})
    assert set(config.options) == {"teacher", "student", "baseline"}


# ---- deviations from the paper's whole recipe -------------------------------------------------


def test_the_cpu_preset_lists_every_difference_the_data_size_and_the_resolved_image_size():
    differs = deviations(build(COMMANDS["main"], {}))
    assert {"dataset", "class_list", "val_fraction", "image_size", "teacher", "teacher_weights", "student_epochs",
            "student_lr", "student_batch_size", "baseline_backbone", "baseline_backbone_weights", "baseline_epochs",
            "probe_feature_draws", "precision"} <= set(differs)
    assert differs["image_size"] == {"value": "48 (upsampled from the stored 32 px)", "paper": 224,
                                     "source": differs["image_size"]["source"]}  # not None
    assert differs["teacher_weights"]["value"] == "imagenet" and differs["teacher_weights"]["paper"] == "openai"
    # preset=paper on the embedded subset: the data is not the paper's, and the run says so
    paper = deviations(build(COMMANDS["main"], {"preset": "paper"}))
    assert {"dataset", "class_list", "val_fraction"} <= set(paper)
    assert paper["image_size"]["value"] == "224 (upsampled from the stored 32 px)"  # 224 px, but not the paper's photos
    assert deviations(build(COMMANDS["main"], {"image_size": 32}))["image_size"]["value"] == 32  # the stored size itself


def other_value(key: str, value):
    """A valid value different from ``value``, for one parameter."""
    table = {"teacher": "efficientnet_lite0", "teacher_weights": "none", "class_list": "imagenet100b",
             "student_loss": "mse", "baseline_backbone": "efficientnet_lite0", "baseline_backbone_weights": "IMAGENET1K_V2",
             "rocl_encoder": "cifar_resnet:resnet34", "rocl_encoder_weights": "/weights/rocl.pt", "fcl_encoder_weights": "/w.pt", "rocl_optimizer": "sgd",
             "fcl_encoder": "efficientnet_lite0", "fcl_loss": "margin", "fcl_reduction": "mean", "image_size": 40,
             "student_schedule": "released", "baseline_schedule": "released", "student_teacher_batchnorm": "train",
             "rocl_regularizer": "separate", "rocl_augment_order": "simclr", "nun_zero_std": "floor",
             "limit_per_class": 5, "attack_budgets": "inf:8/255", "dataset": "embedded", "mnist": ""}
    table |= {"probe_optimizer": "adam" if value == "sgd" else "sgd", "probe_milestones": "7",
              "rocl_warmup_multiplier": None if value else 15.0, "attack_step_fraction": None if value else 0.1,
              "attack_rle_alpha": None if value else 0.007}
    if key in table:
        return table[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.25
    raise AssertionError(f"no other value for {key}={value!r}")


def paper_like(command: str, tmp_path) -> dict:
    """Parameters that put a command on its paper's data (as far as files can) with preset=paper."""
    if command == "fcl":
        return {"preset": "paper", "mnist": str(write_image_folder(tmp_path / "x", {"a": 1}) / "train" / "a" / "0000.png")}
    if command == "rocl":
        (tmp_path / "cifar").mkdir()
        return {"preset": "paper", "dataset": f"cifar10(root={tmp_path / 'cifar'})"}
    root = write_image_folder(tmp_path / "imagenet", {"n01440764": 1})
    return {"preset": "paper", "dataset": str(root), "class_list": "imagenet100"}


@pytest.mark.parametrize("command", ["main", "rocl", "fcl"])
def test_changing_any_setting_of_the_paper_recipe_alone_makes_it_a_deviation(command, tmp_path):
    base_params = paper_like(command, tmp_path)
    base = build(COMMANDS[command], base_params)
    always = set(deviations(base))
    assert always <= {"val_fraction", "precision", "probe_lr", "probe_epochs", "probe_feature_draws"}  # what cinv cannot match
    resolved = settings.settings(base)
    fields = {f.key for f in settings.parameters(COMMANDS[command])}
    checked = 0
    fixed = {"dataset"} | ({"class_list"} if command == "rocl" else set())  # a class list is a folder's
    fixed |= {"mnist"} if command == "fcl" else set()  # preset=paper refuses to run without it (test_methods)
    for key in paper_recipe(base):
        if key not in fields or key in always or key in fixed:
            continue
        changed = build(COMMANDS[command], {**base_params, key: other_value(key, resolved[key])})
        new = set(deviations(changed)) - always
        assert key in new and new <= {key, f"{key}_weights"}, (key, new)  # an encoder's default weights move with it
        checked += 1
    assert checked >= 8


# ---- recipe key and fingerprint --------------------------------------------------------------


def test_recipe_key_and_fingerprint_hash_the_whole_resolved_configuration_but_runtime_knobs(monkeypatch):
    main = COMMANDS["main"]
    key = settings.recipe_key(build(main, {}))
    for runtime in ({"device": "cpu"}, {"num_workers": "0"}, {"seed": "3"}, {"seeds": "0,1"}, {"experiment_name": "x"},
                    {"student_registered_model_name": ""}, {"student_checkpoint_every_steps": "5"}, {"eval_batch_size": "7"},
                    {"reuse": "true"}, {"methods": "student, baseline, teacher"}):
        assert settings.recipe_key(build(main, runtime)) == key, runtime
    for setting in ({"probe_epochs": "3"}, {"student_temperature": "0.2"}, {"teacher_weights": "none"}):
        assert settings.recipe_key(build(main, setting)) != key, setting
    # val_fraction counts where the data reads it; the embedded split keeps its own validation images whatever it says.
    assert settings.recipe_key(build(main, {"val_fraction": "0.1"})) == key
    digits = {"dataset": "mnist()"}
    assert settings.recipe_key(build(main, {**digits, "val_fraction": "0.1"})) != settings.recipe_key(build(main, digits))
    # Precision counts: bf16 and fp32 trainings are never averaged as seeds of one recipe, nor reused for each other.
    monkeypatch.setattr(settings, "resolve_precision", lambda device, precision: Autocast("cpu") if precision == "fp32"
                        else Autocast("cpu", frozen=torch.bfloat16))
    auto, fp32 = build(main, {}), build(main, {"precision": "fp32"})
    assert settings.recipe_key(auto) != settings.recipe_key(fp32)
    prints = [settings.fingerprint(cfg, "student", cfg.options["student"], corruption="none", seed=0, classes=["a", "b"])
              for cfg in (auto, fp32)]
    assert prints[0] != prints[1]
    # A cell's key holds only its own method's options: the student's cell of a run that also trains the
    # baseline pools with a run of the student alone; a method's own variant (FCL or its XE baseline) counts.
    alone, both = build(main, {"methods": "student"}), build(main, {"methods": "student, baseline"})
    assert settings.recipe_key(alone, ["student"]) == settings.recipe_key(both, ["student"])
    assert settings.recipe_key(alone) != settings.recipe_key(both)
    bench = COMMANDS["benchmark"]
    assert settings.recipe_key(build(bench, {"fcl_method": "xe"}), ["fcl"]) != settings.recipe_key(build(bench, {}), ["fcl"])
    other_probe = build(main, {"probe_epochs": "3"})
    assert settings.fingerprint(other_probe, "student", other_probe.options["student"], corruption="none", seed=0,
                                classes=["a", "b"]) == prints[0]  # a training does not depend on its probe


# ---- dry runs and MLproject ------------------------------------------------------------------


def dry(args: list[str], tmp_path) -> dict:
    store = tmp_path / "store.db"
    proc = run_cli(["-m", "cinv.cli", *args, "--dry_run"], tmp_path, {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a dry run creates no run, file or store"
    return json.loads(proc.stdout)


def test_dry_run_prints_the_resolved_configuration_and_its_deviations(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cpu = dry(["main"], work)
    assert set(cpu) == {"config", "compared", "deviations", "paper_vs_code"} and cpu["compared"] == ["student", "baseline"]
    assert {"dataset", "val_fraction", "image_size"} <= set(cpu["deviations"])
    assert cpu["deviations"]["image_size"]["value"] == "48 (upsampled from the stored 32 px)"
    assert {"student_weight_decay", "student_schedule", "student_teacher_batchnorm"} <= {c["setting"] for c in cpu["paper_vs_code"]}
    assert cpu["config"]["options"]["student"]["epochs"] == 3 and cpu["config"]["data"]["image_size"] == 48
    assert "dataset" in dry(["main", "--preset", "paper"], work)["deviations"]
    assert dry(["experiment", "--methods", "rocl", "--rocl_epochs", "2"], work)["config"]["options"]["rocl"]["epochs"] == 2
    bad = run_cli(["-m", "cinv.cli", "main", "--student_lr", "-1", "--dry_run", "true"], work)
    assert bad.returncode == 2 and "student_lr" in bad.stderr and not list(work.iterdir())
    typo = run_cli(["-m", "cinv.cli", "main", "--dry_run", "ture"], work)  # never taken for "no" and a real run
    assert typo.returncode == 2 and "dry_run" in typo.stderr and not list(work.iterdir())


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_dry_run(command, tmp_path, monkeypatch, capsys):
    from cinv import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store.db'}")
    required = {"evaluate": ["--model", "models:/m/1"], "embed": ["--images", str(ROOT)]}.get(command, [])
    assert cli.run(command, [*required, "--dry_run", "true"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) - {"compared"} == {"config", "deviations", "paper_vs_code"} and not list(tmp_path.iterdir())
    if command == "benchmark":  # an empty ``methods`` compares every registered method: the dry run names them
        assert out["compared"] == registered_methods() and "trades" in out["compared"]


def test_mlproject_declares_no_parameter_that_would_show_as_the_literal_empty_string():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    for entry, spec in project["entry_points"].items():
        for key, param in spec["parameters"].items():
            assert param.get("default", "required") not in ("", None), (entry, key)
        assert "--dry_run {dry_run}" in spec["command"]


@pytest.mark.slow
def test_through_mlflow_run_the_parent_shows_the_values_used(store, tmp_path):
    proc = run_cli(["-m", "mlflow", "run", str(ROOT), "--env-manager", "local", "-e", "main", "-P", "limit_per_class=4",
                    "-P", "image_size=32", "-P", "student_epochs=1", "-P", "probe_epochs=1",
                    "-P", "eval_draws=1", "-P", "rocl_epochs=1", "-P", "methods=student,rocl"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (parent,) = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                 if "mlflow.parentRunId" not in r.data.tags and r.data.tags.get("cinv.command") == "main"]
    params = parent.data.params
    assert "" not in {v.strip("'") for v in params.values()}, {k: v for k, v in params.items() if not v.strip("'")}
    assert params["rocl_epochs"] == "1" and params["teacher"] == "efficientnet_lite0" and params["image_size"] == "32"
    assert params["rocl_lr"] == str(METHODS.get("rocl").PRESETS["cpu"]["lr"])  # the value used, logged by cinv
    assert "class_list" not in params and "resume_run_id" not in params  # nothing set: absent, never 


def test_presets_are_declared_beside_their_owners_and_name_real_parameters():
    for name, cls in COMMANDS.items():
        keys = {f.key for f in flat_fields(cls)}
        for preset, values in class_presets(cls).items():
            assert set(values) <= keys, (name, preset, set(values) - keys)
    for name in METHODS.names():
        method = METHODS.get(name)
        assert set(method.PRESETS) == set(PRESET_NAMES)
        for values in method.PRESETS.values():
            assert set(values) <= set(method.Options.model_fields), name
    assert not (ROOT / "cinv" / "config" / "presets.py").exists()  # no second place for the papers' settings


def test_a_single_method_command_takes_its_own_methods_options_and_no_others():
    from cinv import cli

    for command, method in (("student", "student"), ("baseline", "baseline"), ("rocl", "rocl"), ("fcl", "fcl")):
        keys = {f.key for f in settings.parameters(COMMANDS[command])}
        others = {f.key for name in settings.registered_methods() if name != method for f in settings.method_fields(name)}
        assert not keys & others, command
        assert {f.key for f in settings.method_fields(method)} <= keys
        shown = {row.key for row in cli.help_rows(command, COMMANDS[command])}
        assert not shown & others, command
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) baseline_lr.*for student"):
        build(COMMANDS["student"], {"baseline_lr": "0.1"})
    assert {"student_lr", "baseline_lr", "rocl_lr", "fcl_lr", "trades_lr"} <= {f.key for f in settings.parameters(COMMANDS["main"])}


def test_a_registered_class_is_named_by_its_registration_and_old_names_warn_once():
    import warnings

    from cinv.registry import Registry

    registry = Registry("thing")

    @registry.register("new", aliases=("old",))
    class Thing:
        name = ""

    assert Thing.name == "new" and registry.names() == ["new"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert registry.canonical("old") == "new" and registry.canonical("old") == "new"
    assert [str(w.message) for w in caught] == ["thing 'old' is an old name of 'new', which it stands for; use the new name"]
    with pytest.raises(ValueError, match="declares name = 'other'"):
        @registry.register("third")
        class Other:
            name = "other"
