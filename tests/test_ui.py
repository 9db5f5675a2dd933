"""What a user sees in the MLflow UI for one small command, read back through MlflowClient on a fresh store."""

import json
import warnings

import mlflow
import pytest

import cinv
from cinv.tracking import schema


@pytest.fixture
def student_run(student_store):
    """The student run, its store the current one (another module fixture may have switched it)."""
    client, run, uri = student_store
    mlflow.set_tracking_uri(uri)
    return client, run


@pytest.fixture
def main_run(main_store):
    client, parent, children, uri = main_store
    mlflow.set_tracking_uri(uri)
    return client, parent, children


@pytest.fixture(scope="module")
def student_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # a sample a second: this run is short
        mlflow.set_tracking_uri(uri)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_id = cinv.run_command("student", limit_per_class=10, image_size=48, epochs=2, batch_size=32,
                                      experiment_name="ui")
        STUDENT_WARNINGS[:] = [str(w.message) for w in caught]
        yield mlflow.MlflowClient(), mlflow.get_run(run_id), uri


STUDENT_WARNINGS: list[str] = []


def test_logging_the_student_prints_no_known_harmless_torch_warning(student_run):
    assert not [w for w in STUDENT_WARNINGS if "No complete tensor" in w]


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


@pytest.fixture(scope="module")
def main_store(tmp_path_factory):
    """The main job, tiny, with both trainings registered: a parent, two training runs and four cells."""
    root = tmp_path_factory.mktemp("ui-main")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        run_id = cinv.run_command("main", limit_per_class=8, image_size=32, student_epochs=1, baseline_epochs=1,
                                  probe_epochs=2, eval_draws=2, experiment_name="ui-main")
        client = mlflow.MlflowClient()
        runs = client.search_runs([mlflow.get_run(run_id).info.experiment_id])
        yield client, client.get_run(run_id), [client.get_run(r.info.run_id) for r in runs if r.info.run_id != run_id], uri


def test_each_test_metric_is_in_a_runs_history_once_and_on_each_model_once_per_dataset(main_run):
    client, parent, children = main_run
    cells = [r for r in children if r.data.tags.get(schema.STAGE) == "evaluation"]
    assert len(cells) == 4
    for run in cells:
        for key in ("test_top1_mean", "test_top1_se", "test_draws"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, (run.info.run_name, key)
    models = mlflow.search_logged_models(experiment_ids=[parent.info.experiment_id], output_format="list")
    assert {m.name for m in models} >= {"student_encoder", "baseline_encoder", "baseline_classifier", "student_probe"}
    for model in models:
        keys = [(m.key, m.dataset_name, m.dataset_digest) for m in model.metrics or [] if m.key.startswith("test_")]
        assert keys and len(keys) == len(set(keys)), (model.name, keys)
        assert all(name == "embedded-test" for _, name, _ in keys)


def test_a_cell_lists_the_logged_models_it_used_from_other_runs_as_model_inputs(main_run):
    client, parent, children = main_run
    trained = {r.data.tags[schema.METHOD]: r for r in children if r.data.tags.get(schema.STAGE) in ("student", "baseline")}
    produced = {m.model_id: m.source_run_id for m in mlflow.search_logged_models(
        experiment_ids=[parent.info.experiment_id], output_format="list")}
    for run in children:
        if run.data.tags.get(schema.STAGE) != "evaluation" or run.data.tags[schema.METHOD] not in trained:
            continue
        inputs = [m.model_id for m in run.inputs.model_inputs]
        source = trained[run.data.tags[schema.METHOD]].info.run_id
        assert inputs and all(produced[i] == source for i in inputs), run.info.run_name  # the trained model, not its own
        outputs = [m.model_id for m in run.outputs.model_outputs] if run.outputs else []
        assert all(produced[o] == run.info.run_id for o in outputs)


def test_an_evaluation_run_opens_after_the_training_it_evaluates_has_ended(main_run):
    """A cell's duration is its probe and its evaluation, not the training that came before."""
    client, parent, children = main_run
    trained = {r.data.tags[schema.METHOD]: r for r in children if r.data.tags.get(schema.STAGE) in ("student", "baseline")}
    cells = [r for r in children if r.data.tags.get(schema.STAGE) == "evaluation" and r.data.tags[schema.METHOD] in trained]
    assert len(cells) == 2
    for run in cells:
        training = trained[run.data.tags[schema.METHOD]]
        assert run.info.start_time >= training.info.end_time, run.info.run_name


def test_a_run_page_shows_only_the_registered_versions_that_run_produced(main_run):
    client, parent, children = main_run
    for run in [parent, *children]:
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")  # what the run page lists
        stage = run.data.tags.get(schema.STAGE)
        assert {v.name for v in versions} == ({"cinv-student"} if stage == "student" else {"cinv-baseline"}
                                              if stage == "baseline" else set()), run.info.run_name


def test_every_training_run_carries_the_same_provenance_tags(main_run, student_run):
    client, parent, children = main_run
    provenance = {schema.METHOD, schema.TEACHER, schema.DATASET, schema.TRAIN_CORRUPTION, schema.SEED, schema.RECIPE_HASH}
    training = [r for r in children if r.data.tags.get(schema.STAGE) in ("student", "baseline")] + [student_run[1]]
    assert len(training) == 3
    for run in training:
        assert provenance <= set(run.data.tags), (run.info.run_name, provenance - set(run.data.tags))
    assert student_run[1].data.tags[schema.TEACHER] == "efficientnet_lite0"


def test_the_parents_description_table_reads_as_aligned_text_and_its_table_opens_the_evaluation_view(main_run):
    client, parent, children = main_run
    note = parent.data.tags[schema.NOTE]
    fenced = note.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert "| Student (contrastive inversion)" in fenced and len({len(line) for line in fenced.splitlines()}) == 1
    listed = json.loads(parent.data.tags["mlflow.loggedArtifacts"])
    assert [entry["path"] for entry in listed] == ["results.json"]  # per-seed rows are an artifact, not a second table
    assert "results_per_seed.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_with_pickle_refused_a_cinv_model_still_serves_and_a_pickled_one_runs_no_code(student_run, tmp_path, monkeypatch):
    """docs/registry.md: MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false for `mlflow models predict`."""
    from mlflow.exceptions import MlflowException

    client, run = student_run
    (model,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                           filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list")
    marker = tmp_path / "ran"

    class Pickled(mlflow.pyfunc.PythonModel):
        def __setstate__(self, state):
            marker.write_text("code ran while loading")
            self.__dict__.update(state)

        def predict(self, context, model_input):
            return model_input

    mlflow.pyfunc.save_model(tmp_path / "pickled", python_model=Pickled())
    marker.unlink(missing_ok=True)  # saving round-trips the object once
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    assert loaded.predict(loaded.input_example.astype("float32")).shape[0] == 1
    with pytest.raises(MlflowException, match="pickle is disallowed"):
        mlflow.pyfunc.load_model(str(tmp_path / "pickled"))
    assert not marker.exists()


def test_system_metrics_are_on_by_default(student_run):
    client, run = student_run
    assert any(key.startswith("system/") for key in run.data.metrics), sorted(run.data.metrics)


def test_every_run_of_a_few_seconds_shows_its_own_system_metrics(main_run):
    """MLflow samples every 10 s by default; cinv every 2 s, so a short evaluation run has its own."""
    client, parent, children = main_run
    timed = [r for r in [parent, *children] if r.info.end_time - r.info.start_time >= 3000]
    assert timed
    for run in timed:
        assert any(k.startswith("system/") for k in run.data.metrics), (run.info.run_name, sorted(run.data.metrics))


def test_training_runs_list_the_validation_data_and_the_html_table_says_its_charset(main_run):
    """Issue 39 items 4 and 6: val_loss comes from embedded-val, so the training runs list it (context
    validation); results.html declares UTF-8 ("±", not "Â±"); no cinv tag on a run is an empty chip."""
    client, parent, children = main_run
    trainings = [r for r in children if r.info.run_name.split(" · ")[0].endswith(" train")]
    assert {r.info.run_name.split(" · ")[0] for r in trainings} == {"student train", "baseline train"}
    for run in trainings:
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        contexts = {(d.dataset.name, tag.value) for d in inputs for tag in d.tags if tag.key == "mlflow.data.context"}
        assert {("embedded-train", "training"), ("embedded-val", "validation")} <= contexts, (run.info.run_name, contexts)
    html = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/results.html")
    assert html.startswith('<meta charset="utf-8">') and "±" in html
    for run in [parent, *children]:
        empty = [k for k, v in run.data.tags.items() if k.startswith("cinv.") and not str(v).strip()]
        assert not empty, (run.info.run_name, empty)
