"""What a user sees in the MLflow UI for one small command, read back through MlflowClient on a fresh store."""

import json

import mlflow
import pytest

import cinv
from cinv.tracking import schema


@pytest.fixture(scope="module")
def student_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        run_id = cinv.run_command("student", limit_per_class=10, image_size=48, epochs=2, batch_size=32,
                                  experiment_name="ui")
        yield mlflow.MlflowClient(), mlflow.get_run(run_id)


def test_a_finished_run_keeps_no_lease_tags(student_run):
    client, run = student_run
    assert run.info.status == "FINISHED"
    assert schema.LEASE_OWNER not in run.data.tags and schema.LEASE_HEARTBEAT not in run.data.tags


def test_the_experiment_has_a_description(student_run):
    client, run = student_run
    note = client.get_experiment(run.info.experiment_id).tags[schema.NOTE]
    assert "cinv" in note and "deviations.json" in note


def test_training_curves_are_per_optimiser_step_with_a_validation_point_per_epoch(student_run):
    client, run = student_run
    steps = client.get_metric_history(run.info.run_id, "train_loss")
    epochs = client.get_metric_history(run.info.run_id, "train_loss_epoch")
    val = client.get_metric_history(run.info.run_id, "val_loss")
    assert len(epochs) == 2 and len(steps) == epochs[-1].step > 2  # 300 images, batch 32: 9 steps an epoch
    assert [m.step for m in val] == [m.step for m in epochs]
    lrs = client.get_metric_history(run.info.run_id, "lr")
    assert len(lrs) == len(steps) and lrs[-1].value > 0  # the step's own learning rate, not the next one's


def test_a_logged_model_carries_small_examples_and_the_final_epochs_metrics(student_run):
    client, run = student_run
    (model,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                           filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list")
    files = {a.path: a.file_size for a in client.list_logged_model_artifacts(model.model_id)}
    for name in ("input_example.json", "serving_input_example.json"):
        assert 0 < files[name] < 100_000, (name, files[name])
    example = json.loads(mlflow.artifacts.load_text(f"{model.artifact_location}/input_example.json"))
    assert len(example) == 1 and len(example[0]) == 3  # one image, three channels
    metrics = {m.key: m for m in model.metrics}
    final = client.get_metric_history(run.info.run_id, "train_loss_epoch")[-1]
    assert metrics["train_loss_epoch"].value == pytest.approx(final.value)
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    assert loaded.predict(loaded.input_example.astype("float32")).shape[0] == 1


def test_every_command_summary_is_a_whole_sentence():
    from cinv.commands import COMMANDS

    for name, command in COMMANDS.items():
        assert command.summary.endswith(".") and command.summary.count("(") == command.summary.count(")"), name
