import re

import pytest

from cinv import cli
from cinv.commands import CONFIGS as COMMANDS
from cinv.commands.main import MainConfig
from cinv.commands.student import StudentConfig
from cinv.config import ConfigError, flat_fields
from cinv.settings import build, parameters, to_flat
from conftest import ROOT


def test_mlproject_is_generated_from_the_configs():
    assert (ROOT / "MLproject").read_text() == cli.mlproject_text(), "run: python -m cinv.cli mlproject > MLproject"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_defaults_validate_and_round_trip_through_flat_parameters(command, tmp_path):
    cls = COMMANDS[command]
    values = {"model": "models:/cinv-student@champion", "images": str(tmp_path), "name": "fixed_corruption"}
    required = {f.key: values[f.key] for f in flat_fields(cls) if f.required and f.key in values}
    config = build(cls, required)
    flat = to_flat(config)
    as_strings = {k: ("" if v is None else str(v)) for k, v in flat.items()}
    assert build(cls, as_strings) == config


def test_paper_defaults_for_the_student_stage():
    train = build(StudentConfig, {"preset": "paper"}).options["student"]
    assert (train.lr, train.weight_decay, train.batch_size, train.epochs) == (1e-4, 1e-4, 256, 25)
    assert train.temperature == 0.1 and train.loss == "student_teacher"
    assert build(StudentConfig, {"epochs": "2"}).options["student"].epochs == 2  # the single method's bare option name


def test_overriding_one_parameter_keeps_the_commands_other_defaults():
    config = build(MainConfig, {"student_epochs": "5"})
    student, baseline = config.options["student"], config.options["baseline"]
    assert student.epochs == 5
    assert (student.lr, student.batch_size) == (2e-3, 128)  # the cpu preset's, beside the student
    assert student.registered_model_name == "cinv-student"
    assert baseline.epochs == 3


def test_main_defaults():
    config = build(MainConfig, {})
    assert config.corruption == "random_mask(fraction=0.9)"
    assert config.eval.draws == 10 and config.data.dataset == "embedded"


@pytest.mark.parametrize("params,needle", [
    ({"bogus": "1"}, "unknown parameter.*bogus"),
    ({"student_lr": "-1"}, "student_lr"),
    ({"student_lr": "abc"}, "student_lr"),
    ({"student_epochs": "0"}, "student_epochs"),
    ({"student_weight_decay": "2"}, "student_weight_decay"),
    ({"student_temperature": "0"}, "student_temperature"),
    ({"student_loss": "clip"}, "student_loss.*unknown loss"),
    ({"rocl_epochs": "2"}, "rocl_epochs: this run does not use method rocl"),
    ({"corruption": "random_mask(fraction=1.5)"}, "corruption.*fraction"),
    ({"corruption": "speckle"}, "corruption.*unknown corruption"),
    ({"corruption": "random_mask(fraction=__import__('os'))"}, "corruption"),
    ({"teacher": "resnet"}, "teacher.*unknown encoder"),
    ({"dataset": "/no/such/folder"}, "dataset.*not found"),
    ({"probe_label_fraction": "1.5"}, "probe_label_fraction"),
    ({"eval_draws": "0"}, "eval_draws"),
    ({"device": "gpu"}, "device"),
    ({"image_size": "8"}, "image_size"),
])
def test_bad_parameters_name_the_parameter(params, needle):
    with pytest.raises(ConfigError, match=needle):
        build(MainConfig, params)


def test_evaluate_requires_a_model_uri():
    with pytest.raises(ConfigError, match="model: Field required"):
        build(COMMANDS["evaluate"], {})
    with pytest.raises(ConfigError, match="model.*MLflow model URI"):
        build(COMMANDS["evaluate"], {"model": "/tmp/model.pt"})


def test_empty_string_means_none_for_optional_parameters():
    config = build(MainConfig, {"class_list": "", "image_size": "", "student_registered_model_name": ""})
    assert config.data.class_list is None and config.data.image_size == 48  # resolved: the embedded data's size
    assert config.options["student"].registered_model_name is None
    assert config.options["baseline"].registered_model_name == "cinv-baseline"


def test_help_all_lists_every_parameter_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parser_for("main", MainConfig, full=True).parse_args(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in parameters(MainConfig):
        assert f"--{f.key}" in text
    assert "--rocl_epochs INT" in text and "--student_lr FLOAT" in text  # every method's options, with their types
    assert "(default: random_mask(fraction=0.9))" in text


def test_help_folds_the_methods_a_job_does_not_run_into_one_line_each_yet_takes_their_options(capsys):
    with pytest.raises(SystemExit):
        cli.parser_for("main", MainConfig).parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--student_lr FLOAT" in text and "--baseline_epochs INT" in text  # the methods main runs
    assert "--rocl_epochs" not in text and "--fcl_epochs" not in text
    assert re.search(r"rocl: \d+ options, rocl_<option>", text) and "--help-all" in text
    args = cli.parser_for("main", MainConfig).parse_args(["--rocl_epochs", "3"])
    assert vars(args)["rocl_epochs"] == "3"
