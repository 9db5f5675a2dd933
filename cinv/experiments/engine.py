"""The one experiment engine: every recipe (the main job, each paper experiment, the benchmark) is a
grid of *cells* run by the same orchestration, once per training seed.

A [Lab][] holds one seed's models. ``trained`` trains a method (or reuses one) in a child
run of the command's run; a cell evaluates one model on one corruption in a child run of its own,
fitting the probe it needs there (so the probe's loss, its training images and its logged model
are in the cell's run). Every training and every cell logs the same things whatever the recipe.

Trained models carry a ``fingerprint`` tag (``settings.fingerprint``: data, precision, teacher,
options, corruption, seed), so a later run in the same store with the same training loads them
instead of training again (``reuse``); a resumed run reuses its own finished trainings and
cells. Every evaluation is tagged with its recipe key and seed (``tracking.schema.RECIPE``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import pandas as pd
import torch
from mlflow.models.model import ModelInfo

from cinv import encoders, settings
from cinv.config.base import updated
from cinv.context import Setup
from cinv.corruption import get as get_corruption
from cinv.corruption.base import Distortion
from cinv.corruption.restoration import Restored
from cinv.evaluation.against_paper import compare, log_comparison
from cinv.evaluation.metrics import Evaluation
from cinv.evaluation.protocol import evaluate_model, evaluation_of, link
from cinv.evaluation.tables import across_seeds, statistic_note
from cinv.methods import METHODS, label
from cinv.probe import train_probe
from cinv.registry import Registry
from cinv.tracking import schema
from cinv.tracking.models import log_classifier, logged_models_of, register
from cinv.tracking.runs import (
    child_named,
    child_run,
    children,
    evaluation_tags,
    log_datasets,
    log_figure,
    log_model_input,
    log_params,
    log_table,
    resuming,
    training_tags,
)
from cinv.tracking.serving import LoadedEncoder, load_encoder
from cinv.training.checkpoint import Checkpointer, for_active_run

__all__ = ["Recipe", "EXPERIMENTS", "recipe", "Lab", "Plot", "run", "run_label", "log_results", "hold_against_paper",
           "train_in_run", "training_run_tags", "register_trained"]

Plot = Callable[[pd.DataFrame], object]  # a recipe's figure, drawn from its final (across-seed) table


@dataclass(frozen=True)
class Recipe:
    """A grid of cells: ``cells(lab)`` evaluates what one seed's lab trains and returns the plot of
    the final table. ``methods``: what it compares unless ``methods`` is given; ``uses``: methods
    whose options it needs besides those (e.g. the baseline's backbone for a clean classifier);
    ``compares``: False for a recipe whose cells are fixed (the loss ablation), where ``methods``
    does not apply."""

    name: str
    cells: Callable[[Lab], Plot]
    methods: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    compares: bool = True

    @property
    def doc(self) -> str:
        return (self.cells.__doc__ or "").strip()


EXPERIMENTS: Registry[Recipe] = Registry("experiment")


def recipe(name: str, *, methods: tuple[str, ...] = (), uses: tuple[str, ...] = (), compares: bool = True):
    """Register ``cells`` as the recipe ``name`` (``@recipe("fixed_corruption", methods=("student", "baseline"))``)."""

    def decorator(cells: Callable[[Lab], Plot]) -> Callable[[Lab], Plot]:
        EXPERIMENTS.register(name)(lambda: Recipe(name, cells, methods, uses, compares))
        return cells

    return decorator


@dataclass
class Trained:
    """A model the lab holds, and the logged models it is made of (linked to its evaluations)."""

    model: torch.nn.Module
    logged: list[ModelInfo] = dataclasses.field(default_factory=list)  # its own logged models
    trained_on: str = ""
    fraction: float = 1.0  # a probe's label fraction: its encoder's page shows only the all-labels probe's evaluation
    encoder: list[ModelInfo] = dataclasses.field(default_factory=list)  # a probe's encoder, when logged

    def linked(self) -> list[ModelInfo]:
        """The logged models an evaluation of this model on its own training corruption describes."""
        return self.logged + (self.encoder if self.fraction >= 1 else [])


class Lab:
    """One training seed's models (``s.seed``) and evaluated cells; ``rows`` holds one row per cell.

    ``cfg`` is a resolved config (``settings.build``): each method's options are ``cfg.options[name]``.
    ``s.teacher`` is the frozen teacher. ``compared``: the methods the recipe compares (the
    config's ``compared()``: ``methods`` when given, else the recipe's own)."""

    def __init__(self, cfg, s: Setup, recipe: Recipe):
        self.cfg, self.s, self.name = cfg, s, recipe.name
        self.compared = [METHODS.canonical(m) for m in cfg.compared()]
        self.root = mlflow.active_run().info.run_id
        self.rows: list[dict] = []
        self.keys: list[str] = []  # each row's cell key (a method's name or a cell variant)
        self.logged: dict[str, dict[str, ModelInfo]] = {}  # each method's logged models by kind (what main registers)
        self._models: dict[str, Trained] = {}
        self._probes: dict[tuple, Trained] = {}
        self._open_cell: Callable[[], None] | None = None  # opens the pending cell's run (see ``cell``)

    @property
    def seed(self) -> int:
        return self.s.seed

    @property
    def teacher(self) -> encoders.FrozenEncoder:
        return self.s.teacher

    def recipe(self, key: str) -> str:
        """A cell's recipe key: the run's settings with only the options of the methods the cell reads."""
        base = key.rpartition(" + ")[2]  # a restorer + the clean classifier reads what the classifier reads
        method = METHODS.find(base.removesuffix("_clean_probe"))
        if method is not None:
            return settings.recipe_key(self.cfg, [method.name])
        backbone = base == "clean_classifier" and self.cfg.clean_classifier == "backbone"
        return settings.recipe_key(self.cfg, ["baseline"] if backbone else ["teacher"])

    def options(self, name: str, **overrides):
        """Method ``name``'s options in this run, never registering what the lab trains."""
        opts = self.cfg.options[METHODS.canonical(name)]
        update = {k: v for k, v in {**overrides, "registered_model_name": None}.items() if k in type(opts).model_fields}
        return updated(opts, **update)

    # ---- models ----------------------------------------------------------------------------

    def _fingerprints(self, name: str, opts, corruption: Distortion, label_fraction: float) -> tuple[str, str]:
        """(what the method produces, its encoder): one key for a method that produces an encoder."""
        method = METHODS.get(name)
        common = dict(corruption=corruption.spec, seed=self.seed, classes=self.s.splits.classes)
        if "classifier" in method.produces:
            return (settings.fingerprint(self.cfg, name, opts, label_fraction=label_fraction, **common),
                    settings.fingerprint(self.cfg, name, opts, label_fraction=label_fraction, kind=f"{name}_backbone",
                                         **common))
        key = settings.fingerprint(self.cfg, name, opts, **common)
        return key, key

    def reusable(self, fingerprint: str) -> LoadedEncoder | None:
        """A logged model with this fingerprint: from any run (``reuse``), or, resuming, from this run's own trainings."""
        if not (self.cfg.reuse or resuming(self.root)):
            return None
        experiments = [e.experiment_id for e in mlflow.search_experiments()]
        found = mlflow.search_logged_models(experiment_ids=experiments, filter_string=f"tags.fingerprint = '{fingerprint}'",
                                            output_format="list")
        ready = [m for m in found if str(m.status).endswith("READY")]
        if not self.cfg.reuse:
            own = {run.info.run_id for run in children(self.root)}
            ready = [m for m in ready if m.source_run_id in own]
        return load_encoder(f"models:/{ready[0].model_id}", self.s.device) if ready else None

    def trained(self, name: str, corruption: Distortion, *, label_fraction: float = 1.0, **overrides) -> Trained:
        """What method ``name`` produces when trained on ``corruption`` (clean images for a method
        that trains clean; a label fraction for a method with its own head): this run's, a logged
        one, or trained now in a child run of the command's run. ``overrides``: options changed
        for this cell (the loss ablation's loss)."""
        method = METHODS.get(name)
        name = method.name
        if not method.trains:  # the teacher's own representations: nothing to train
            return Trained(self.teacher, trained_on="none")
        if method.clean_training:
            corruption = get_corruption("none")
        fraction = label_fraction if "classifier" in method.produces else 1.0
        opts = self.options(name, **overrides)
        key, encoder_key = self._fingerprints(name, opts, corruption, fraction)
        if key in self._models:
            return self._models[key]
        run_name = f"{run_label(name)} train · {corruption.spec} · seed {self.seed}"
        here = dataclasses.replace(self.s, corruption=corruption)
        tags = {**training_run_tags(here, name, opts, self.cfg.teacher, self.recipe(name)), "fingerprint": key}
        done = child_named(run_name, finished=True, tags=tags, parent=self.root)
        found = None if done else self.reusable(key)
        if done is not None:  # this run trained it before it was interrupted: its final checkpoint, exactly
            model = method.train(here, opts, label_fraction=fraction, checkpointer=Checkpointer(done.info.run_id), log=False)
            infos = logged_kinds(done.info.run_id, name)
            held = Trained(model, list(infos.values()), corruption.spec)
            self.logged.setdefault(name, infos)
        elif found is not None:
            mlflow.MlflowClient().set_tag(self.root, schema.reused(name, key), found.model_uri)
            held = Trained(found, [mlflow.models.get_model_info(found.model_uri)], corruption.spec)
            self.logged.setdefault(name, {"classifier" if "classifier" in method.produces else "encoder": held.logged[0]})
        else:
            with child_run(run_name, parent=self.root, **tags):
                log_datasets(self.s.splits, "train", "val")  # val_loss is read from the validation split
                log_params({"corruption": corruption.spec, "seed": self.seed, "label_fraction": fraction,
                            **{f"{name}_{k}": v for k, v in opts.model_dump().items()}})
                model, infos = train_in_run(here, name, opts, self.cfg.teacher, label_fraction=fraction,
                                            checkpointer=for_active_run(opts))
                for kind, info in infos.items():
                    mlflow.set_logged_model_tags(info.model_id, {"fingerprint": encoder_key if kind == "encoder" else key})
            held = Trained(model, list(infos.values()), corruption.spec)
            self.logged.setdefault(name, infos)
        if "classifier" in method.produces and not isinstance(held.model, LoadedEncoder):
            self._models[encoder_key] = Trained(method.encoder(held.model), held.logged[:1], corruption.spec)
        self._models[key] = held
        return held

    def encoder(self, name: str, corruption: Distortion) -> Trained:
        """The representation method ``name`` learns on ``corruption`` (a classifier's backbone; transfer)."""
        method = METHODS.get(name)
        if not method.trains:
            return Trained(self.teacher, trained_on="none")
        if method.clean_training:
            corruption = get_corruption("none")
        _, encoder_key = self._fingerprints(method.name, self.options(method.name), corruption, 1.0)
        if encoder_key not in self._models:
            found = self.reusable(encoder_key)
            if found is None:
                trained = self.trained(method.name, corruption)
                self._models.setdefault(encoder_key, Trained(method.encoder(trained.model), trained.logged[:1],
                                                             trained.trained_on))
            else:
                self._models[encoder_key] = Trained(found, [mlflow.models.get_model_info(found.model_uri)], corruption.spec)
        return self._models[encoder_key]

    def classifier(self, name: str, corruption: Distortion, label_fraction: float | None = None,
                   probe_on: Distortion | None = None) -> Trained:
        """Method ``name`` as a classifier: its own head (trained on the label fraction), or a probe
        (on the label fraction, fitted on ``probe_on``, default the training corruption) on what it learned."""
        method = METHODS.get(name)
        fraction = self.cfg.probe.label_fraction if label_fraction is None else label_fraction
        if "classifier" in method.produces:
            return self.trained(name, corruption, label_fraction=fraction)
        return self.probe(self.trained(name, corruption), probe_on or corruption, fraction)

    def clean_probe(self) -> Trained:
        """The teacher's probe fitted on clean images."""
        return self.probe(Trained(self.teacher, trained_on="none"), get_corruption("none"))

    def clean_classifier(self) -> Trained:
        """The classifier trained on clean images of the pixel-space baselines (Tables 7/8): "an
        ImageNet pre-trained ResNet-101 backbone with a linear classifier trained on clean
        ImageNet-100 images", i.e. the pretrained baseline backbone with a clean probe, or the
        teacher's clean probe (``clean_classifier=teacher``)."""
        if self.cfg.clean_classifier == "teacher":
            return self.clean_probe()
        if "clean backbone" not in self._models:
            opts = self.options("baseline")
            backbone = encoders.freeze(encoders.get(opts.backbone, opts.backbone_weights)).to(self.s.device)
            self._models["clean backbone"] = Trained(backbone, trained_on="none")
        return self.probe(self._models["clean backbone"], get_corruption("none"))

    def probe(self, encoder: Trained | torch.nn.Module, corruption: Distortion, label_fraction: float | None = None,
              s: Setup | None = None) -> Trained:
        """A probe fitted on ``corruption`` (of ``s``'s data, default the experiment's), once per
        encoder, corruption and label fraction, in the run active when it is first needed (a
        cell's): its loss per epoch, its training images and the probe itself are logged there.
        Cells that evaluate it elsewhere share it."""
        held = encoder if isinstance(encoder, Trained) else Trained(encoder)
        s = s or self.s
        fraction = self.cfg.probe.label_fraction if label_fraction is None else label_fraction
        key = (id(held.model), corruption.spec, fraction, id(s.splits))
        if key not in self._probes:
            if self._open_cell is not None:  # the probe is the cell's own work: its run starts here
                self._open_cell()
            opts = updated(self.cfg.probe, label_fraction=fraction)
            here = dataclasses.replace(s, corruption=corruption)
            log_datasets(s.splits, "train")
            for info in held.logged[:1]:
                log_model_input(info.model_uri)
            probe = train_probe(here, held.model, opts)
            uri = held.logged[0].model_uri if held.logged else getattr(held.model, "name", "teacher")
            # Named by what it probes (student_probe, teacher_probe_clean, ...); logged at its last epoch,
            # so the model carries its final probe_loss.
            base = held.logged[0].name.removesuffix("_encoder") if held.logged else (
                "teacher" if held.model is self.teacher else "backbone")
            name = f"{base}_probe" + ("_clean" if corruption.name == "none" else "") + (
                f"_{fraction:.0%}_labels".replace("%", "pct") if fraction < 1 else "")
            logged = [log_classifier(here, probe, corruption, name=name, method="linear_probe", encoder=uri,
                                     step=opts.epochs - 1)] if opts.log_model else []
            self._probes[key] = Trained(probe, logged, corruption.spec, fraction, held.logged[:1])
        return self._probes[key]

    def source(self, key: str) -> str:
        """The pretrained network a cell's model starts from (the report's ``teacher`` column)."""
        if key.endswith("clean_classifier"):
            return self.options("baseline").backbone if self.cfg.clean_classifier == "backbone" else self.cfg.teacher
        method = METHODS.find(key)
        return method.source(self.options(method.name), self.cfg.teacher) if method else self.cfg.teacher

    # ---- cells -----------------------------------------------------------------------------

    def cell(self, key: str, model: Callable[[], Trained | torch.nn.Module], evaluated_on: Distortion, *,
             trained_on: Distortion, setup: Setup | None = None, **labels) -> Evaluation:
        """Evaluate one model on one corruption in its own child run (on ``setup``'s test split,
        default the experiment's); record a table row. ``key``: a method's name or a cell variant
        (``methods.CELL_LABELS``); ``model``: builds the model (training in the models' own runs,
        then probing in this cell's run, which opens when the probe starts); ``trained_on``: the corruption the model (and its probe) saw in
        training; ``labels``: the cell's other fields (label_fraction, loss, target, severity, ...).
        The evaluation is linked to the logged models it measured when it is on what they trained on."""
        s = setup or self.s
        shown = evaluated_on.corruption if isinstance(evaluated_on, Restored) else evaluated_on  # reported as the corruption
        condition = "; ".join(f"{k}={labels[k]}" for k in ("target", "label_shift") if k in labels)
        method = METHODS.find(key)
        if method is not None and method.clean_training:  # its training never saw the corruption
            trained_on = get_corruption("none")
        loss = labels.get("loss", getattr(self.options(method.name), "loss", "") if method else "")
        fraction = labels.get("label_fraction", self.cfg.probe.label_fraction)
        tags = {schema.STAGE: "evaluation", schema.EXPERIMENT: self.name, **evaluation_tags(
                    key if not method else method.name, eval_corruption=evaluated_on.spec, train_corruption=trained_on.spec,
                    teacher=self.source(key), dataset=s.splits.name, seed=self.seed, recipe=self.recipe(key), loss=loss,
                    label_fraction=fraction, condition=condition)}
        name = " · ".join([f"{run_label(key)} test", evaluated_on.spec, *(f"{k}={v}" for k, v in labels.items()),
                           *([f"trained on {trained_on.spec}"] if trained_on.spec != evaluated_on.spec else []),
                           f"seed {self.seed}"])
        if done := child_named(name, finished=True, tags=tags, parent=self.root):  # evaluated before an interruption
            result = evaluation_of(done.info.run_id)
        else:
            with self._cell_run(name, tags, s, {"corruption": evaluated_on.spec, "method": key, "seed": self.seed,
                                                 "label_fraction": fraction, **labels}) as open_now:
                built = model()
                open_now()
                held = built if isinstance(built, Trained) else Trained(built)
                for info in held.logged:  # models from another run are this cell's inputs (its own are outputs)
                    if info.run_id != mlflow.active_run().info.run_id:
                        log_model_input(info.model_uri)
                result = evaluate_model(s, held.model, self.cfg.eval, corruption=evaluated_on)
                if held.linked() and held.trained_on == evaluated_on.spec and s is self.s:
                    link(held.linked(), result, s)
        self.keys.append(key)
        self.rows.append({"method": label(key), "corruption": shown.spec, "train_corruption": trained_on.spec, **labels,
                          "seed": self.seed, "draws": len(result.draws),
                          **{f"{m}_{stat}": getattr(result, stat)(m) for m in result.metrics for stat in ("mean", "se")}})
        return result


    @contextlib.contextmanager
    def _cell_run(self, name: str, tags: dict, s: Setup, params: dict):
        """A cell's run, opened when its own work starts: the first probe fitted for it, or its
        evaluation, whichever comes first. The models it evaluates train before, in their own runs,
        so the cell's duration is its probe and its evaluation, not the training it measures."""
        stack = contextlib.ExitStack()

        def open_now() -> None:
            if self._open_cell is None:
                return
            self._open_cell = None
            stack.enter_context(child_run(name, parent=self.root, **tags))
            log_datasets(s.splits, "test")
            log_params(params)

        self._open_cell = open_now
        try:
            with stack:  # an error once the run is open ends it FAILED, with the error
                yield open_now
        finally:
            self._open_cell = None


def train_in_run(s: Setup, name: str, opts, teacher: str, *, label_fraction: float = 1.0,
                 checkpointer: Checkpointer | None = None, log: bool = True,
                 **produced_by: str) -> tuple[torch.nn.Module, dict[str, ModelInfo]]:
    """Method ``name`` trained in the active run, and its models logged there (by kind: ``encoder``,
    ``classifier``): what every command that trains does, the engine's cells and the single-method
    commands alike. A reopened run that logged them before it stopped keeps those. ``log=False``
    (another process of a distributed run): trained only. ``produced_by``: more tags for the models."""
    method = METHODS.get(name)
    model = method.train(s, opts, label_fraction=label_fraction, checkpointer=checkpointer, log=log)
    if not log:
        return model, {}
    infos = logged_kinds(mlflow.active_run().info.run_id, method.name) or method.log(s, model, opts, teacher, **produced_by)
    return model, infos


def training_run_tags(s: Setup, name: str, opts, teacher: str, recipe: str) -> dict[str, str]:
    """The tags of a run that trains method ``name`` on ``s`` (its data, corruption and seed), one
    rule for the engine's trainings and the single-method commands: the stage (the method's name)
    and the provenance ``tracking.runs.training_tags`` defines, under the variant the options
    select (``Method.variant``) and the network it starts from (``Method.source``)."""
    method = METHODS.get(name)
    return {schema.STAGE: method.name, **training_tags(
        method.variant(opts), teacher=method.source(opts, teacher), dataset=s.splits.name,
        train_corruption=s.corruption.spec, seed=s.seed, recipe=recipe)}


def logged_kinds(run_id: str, name: str) -> dict[str, ModelInfo]:
    """The models method ``name`` logged in a run, by kind (``encoder``, ``classifier``)."""
    logged = logged_models_of(run_id)
    return {kind: logged[f"{name}_{kind}"] for kind in ("encoder", "classifier") if f"{name}_{kind}" in logged}


def register_trained(name: str, infos: dict[str, ModelInfo], opts) -> None:
    """The one registration rule: a command registers one version per method it trains, the
    first training seed's, once every stage has succeeded, under the method's
    ``registered_model_name`` (none: not registered); what is registered is the model kind the
    method declares (``Method.registers``: the encoder, or FCL's whole classifier)."""
    kind = METHODS.get(name).registers
    if kind in infos:
        register(infos[kind], getattr(opts, "registered_model_name", None))


def run_label(key: str) -> str:
    """A run's first words, which the UI's runs table shows before it cuts the name (about 15
    characters): the model, short (``student``, ``teacher clean probe``), then ``train`` or
    ``test``; the corruption and the seed follow, and are tags and columns anyway."""
    restorer, plus, key = key.rpartition(" + ")
    return f"{restorer.split('(')[0]}{plus}{key.replace('_', ' ')}"


def run(cfg, s: Setup, recipe: Recipe) -> tuple[pd.DataFrame, Plot, list[Lab]]:
    """Run ``recipe``'s cells once per training seed (a Lab each; the data splits stay those of
    ``cfg.seed``): the rows of every seed, the plot, and each seed's lab."""
    rows, plot, labs = [], None, []
    for seed in cfg.seed_list:
        lab = Lab(cfg, dataclasses.replace(s, seed=seed), recipe)
        plot = recipe.cells(lab)
        rows += lab.rows
        labs.append(lab)
    return pd.DataFrame(rows), plot, labs


def log_results(rows: pd.DataFrame, stem: str, plot: Plot) -> pd.DataFrame:
    """The per-seed rows and the across-seed table (CSV, Markdown, HTML) and its figure."""
    table = across_seeds(rows)
    log_table(table, stem)  # the one table the UI's Evaluation view opens on
    log_table(rows, f"{stem}_per_seed", listed=False)
    log_figure(plot(table), f"{stem}.png")
    mlflow.set_tag(schema.STATISTIC, statistic_note(table)[:5000])
    return table


def hold_against_paper(cfg, rows: pd.DataFrame, labs: list[Lab]) -> pd.DataFrame:
    """Every cell of a recipe's run beside its published value (``evaluation.against_paper``):
    logged as the ``paper_comparison`` table, its headline in a tag; returned."""
    keys = [key for lab in labs for key in lab.keys]
    cells = across_seeds(rows.drop(columns="method").assign(key=keys))
    defaults = {"label_fraction": cfg.probe.label_fraction} if hasattr(cfg, "probe") else {}
    options = {name: [f.key for f in settings.method_fields(name)] for name in cfg.options}
    table = compare(cells, labs[0].name if labs else "", settings.deviations(cfg), options=options, defaults=defaults)
    log_comparison(table)
    return table

