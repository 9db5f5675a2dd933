"""Extension from outside the package: a plug-in installed from tests/plugin registers a corruption,
a loss and a method through the ``cinv.plugins`` entry-point group, and every command takes them by name."""

import os
import shutil
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from conftest import ROOT, run_cli

TINY = ["--limit_per_class", "8", "--image_size", "32"]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The plug-in, pip-installed (not copied) into a folder of its own; its dist-info carries the entry point."""
    site, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("plugin") / "src"
    shutil.copytree(ROOT / "tests" / "plugin", source)  # pip builds in the source tree: keep the checkout clean
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
                    str(source)], check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert list(site.glob("cinv_fog_plugin-*.dist-info"))
    return site


def cinv(args: list[str], cwd, site) -> subprocess.CompletedProcess:
    return run_cli(["-m", "cinv.cli", *args], cwd, {"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"})


def test_without_the_plugin_its_names_are_unknown(store, tmp_path):
    proc = run_cli(["-m", "cinv.cli", "student", "--corruption", "my_fog(level=3)"], tmp_path)
    assert proc.returncode == 2 and "unknown corruption 'my_fog'" in proc.stderr


@pytest.mark.slow
def test_a_plugins_corruption_loss_and_method_work_through_every_command(store, tmp_path, plugin_site):
    student = cinv(["student", *TINY, "--corruption", "my_fog(level=2)", "--loss", "cosine", "--epochs", "1",
                    "--batch_size", "32"], tmp_path, plugin_site)
    assert student.returncode == 0, student.stderr[-2000:]
    experiment = cinv(["experiment", "--name", "fixed_corruption", *TINY, "--corruptions", "my_fog(level=4)",
                       "--label_fractions", "1", "--methods", "student,head_only", "--student_epochs", "1", "--head_only_lr", "0.05",
                       "--student_batch_size", "32", "--probe_epochs", "2", "--eval_draws", "2"], tmp_path, plugin_site)
    assert experiment.returncode == 0, experiment.stderr[-2000:]
    tune = cinv(["tune", "--method", "head_only", "--study_name", "plugin", "--n_trials", "2", "--reports", "1",
                 "--val_draws", "1", *TINY], tmp_path, plugin_site)
    assert tune.returncode == 0, tune.stderr[-2000:]
    report = cinv(["report", "--methods", "head_only,student"], tmp_path, plugin_site)
    assert report.returncode == 0, report.stderr[-2000:]

    runs = {r.data.tags.get("cinv.command"): r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
            if "mlflow.parentRunId" not in r.data.tags}
    config = mlflow.artifacts.load_dict(f"runs:/{runs['student'].info.run_id}/config.json")
    assert config["corruption"] == "my_fog(level=2)" and config["options"]["student"]["loss"] == "cosine"
    options = mlflow.artifacts.load_dict(f"runs:/{runs['experiment'].info.run_id}/config.json")["options"]
    assert options["head_only"]["lr"] == 0.05 and options["head_only"]["epochs"] == 1  # a plug-in's options, its presets
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{runs['experiment'].info.run_id}/fixed_corruption.csv"))
    assert set(table["method"]) == {"student (ours)", "head-only baseline"} and set(table["corruption"]) == {"my_fog(level=4)"}
    assert runs["tune"].data.metrics["trials_complete"] == 2
    cells = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{runs['report'].info.run_id}/report_top1.csv"))
    assert set(cells["method"]) == {"student (ours)", "head-only baseline"}
