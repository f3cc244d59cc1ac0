"""The plan: every file and instance name the rules build, computed from the plain config dict.

The rules (rules/*.smk) call these functions from input functions and params; nothing else in
the package knows a path under ``results/``. Instance names: an experiment ``E``, its
cross-validation folds ``E__fold{k}``, its out-of-fold members ``E__oof{j}`` /
``E__fold{k}__oof{j}`` (stacking), and sweep children ``E.param-value``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metasplice.base_models.pangolin.model import COMMIT as PANGOLIN_COMMIT
from metasplice.base_models.pangolin.model import REPLICATES, TISSUES, weight_name
from metasplice.base_models.pangolin.model import URL as PANGOLIN_URL
from metasplice.base_models.pangolin.model import WEIGHTS as PANGOLIN_WEIGHTS
from metasplice.data.fetch import is_generated, is_url
from metasplice.data.labelled import LabelsConfig
from metasplice.data.splits import CrossValConfig, check_group_gaps, fold_name, split_fold_name
from metasplice.data.variants import coordinate_column_for
from metasplice.evaluation.evaluate import EvalConfig
from metasplice.evaluation.report import FIGURES
from metasplice.experiments.ensembles import ensemble_for
from metasplice.experiments.registry import Experiment, experiment_for
from metasplice.experiments.registry import experiment_kind as spec_kind
from metasplice.experiments.stacking import OOFConfig, StackConfig, oof_name, split_oof_name
from metasplice.experiments.sweeps import expand_config, expand_names
from metasplice.models.common import SCORE_TASKS

RESULTS = "results"
REPOSITORY = Path(__file__).resolve().parents[2]

# Settings that change a base model's numbers; the others (device, batch size, threads, gpu, engine)
# only change how fast they come, so editing them does not rerun the scoring.
SCORING_KEYS = ("kind", "weights", "flanking_size", "distance", "mask", "precision")
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def scores_path(base: str) -> str:
    """Per-variant scores of base model ``base``."""
    return f"{RESULTS}/targets/{base}/scores.parquet"


def deltas_path(base: str) -> str:
    """Per-position delta track of base model ``base``."""
    return f"{RESULTS}/targets/{base}/deltas.npy"


def eval_path(instance: str, name: str) -> str:
    """``predictions.parquet`` / ``metrics.json`` of an evaluated instance."""
    return f"{RESULTS}/eval/{instance}/{name}"


def model_path(instance: str, name: str) -> str:
    """A file of an instance's model directory."""
    return f"{RESULTS}/models/{instance}/{name}"


REPORT_FIGURES: dict[str, str] = {name: f"{RESULTS}/report/figures/{name}.png" for name in FIGURES}


REPORT_TABLES: dict[str, str] = {
    "summary_md": f"{RESULTS}/report/summary.md",
    "summary_tsv": f"{RESULTS}/report/summary.tsv",
    "breakdowns": f"{RESULTS}/report/breakdowns.tsv",
    "tasks": f"{RESULTS}/report/tasks.tsv",
}


REPORT_OUTPUTS: list[str] = [*REPORT_TABLES.values(), *REPORT_FIGURES.values()]


def evaluation_section(config: Mapping[str, Any]) -> dict:
    """The ``evaluation`` config section (empty when absent: every default applies)."""
    return dict(config.get("evaluation") or {})


RUNTIME_EVAL_KEYS = ("batch_size", "device", "threads")  # how an evaluation runs, not what it computes


def evaluation_params(config: Mapping[str, Any]) -> dict:
    """Settings handed to the evaluation rules as params (a change reruns them); validated here so a bad key
    fails the DAG. The runtime keys are left out: the scripts read them with :func:`evaluation_runtime`."""
    values = {k: v for k, v in evaluation_section(config).items() if k not in ("experiments", "baselines")}
    EvalConfig.from_dict(values)
    values.pop("cross_validation", None)
    return {k: v for k, v in values.items() if k not in RUNTIME_EVAL_KEYS}


def evaluation_runtime(config: Mapping[str, Any]) -> dict:
    """The runtime settings of ``evaluation`` (batch size, device): read by the scripts from the config."""
    return {k: v for k, v in evaluation_section(config).items() if k in RUNTIME_EVAL_KEYS}


def reference_base(config: Mapping[str, Any]) -> str:
    """Base model every row is compared with (``evaluation.reference``, default spliceai)."""
    return EvalConfig.from_dict(evaluation_params(config)).reference


def baseline_bases(config: Mapping[str, Any]) -> list[str]:
    """Base models evaluated as baseline rows: ``evaluation.baselines`` (the reference always first)."""
    ref = reference_base(config)
    bases = [str(b) for b in evaluation_section(config).get("baselines") or [ref]]
    return [ref] + [b for b in dict.fromkeys(bases) if b != ref]


def report_experiments(config: Mapping[str, Any]) -> list[str]:
    """Experiments in the report: ``evaluation.experiments``, default every configured experiment."""
    configured = config.get("experiments") or {}
    names = list(evaluation_section(config).get("experiments") or configured)
    names = expand_names(names, config.get("_sweeps") or {})  # a sweep's name selects its children
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise ValueError(
            f"config evaluation.experiments names unknown experiments {unknown}; configured: {', '.join(configured)}"
        )
    return names


def locus_cv(config: Mapping[str, Any]) -> bool:
    """True when ``split.cv`` is set: the dataset is one locus, evaluated by its folds only."""
    return bool((config.get("split") or {}).get("cv"))


def crossval_settings(config: Mapping[str, Any]) -> CrossValConfig:
    """The folds: ``split.cv`` (a one-locus set, grouped by exon, gene or block) when set, else
    ``evaluation.cross_validation`` (chromosome groups), as a :class:`metasplice.data.splits.CrossValConfig`."""
    if locus_cv(config):
        return CrossValConfig.from_split(config["split"]["cv"])
    return CrossValConfig.from_dict(evaluation_section(config).get("cross_validation"))


def crossval_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Params of rule crossval_folds: the fold settings (:func:`crossval_settings`) as a plain dict."""
    values = dataclasses.asdict(crossval_settings(config))
    values["groups"] = [list(g) for g in values["groups"]]
    return values


def crossval_folds(config: Mapping[str, Any]) -> list[int]:
    """Fold indices; empty when cross-validation is off."""
    cv = crossval_settings(config)
    return list(range(cv.k)) if cv.enabled else []


def fold_variants_paths(config: Mapping[str, Any]) -> list[str]:
    """Outputs of the crossval_folds rule (one variants file per fold)."""
    return [f"{RESULTS}/crossval/fold{k}/variants.parquet" for k in range(crossval_settings(config).k)]


def oof_settings(config: Mapping[str, Any]):
    """The ``stacking`` section as a :class:`metasplice.experiments.stacking.OOFConfig`."""
    return OOFConfig.from_config(config)


def oof_scope_variants(config: Mapping[str, Any], scope: str, variants: str) -> str:
    """Variants file whose training rows scope ``scope`` splits: ``main`` (the main split) or ``fold{k}``."""
    if scope == "main":
        return variants
    if not scope.startswith("fold") or not scope[4:].isdigit():
        raise ValueError(f"unknown out-of-fold scope {scope!r} (main or fold<k>)")
    return experiment_variants(config, f"x__{scope}", variants)


def oof_variants_paths(config: Mapping[str, Any], scope: str) -> list[str]:
    """Outputs of rule oof_splits for ``scope``: one variants file per out-of-fold group."""
    return [f"{RESULTS}/stacking/{scope}/oof{j}/variants.parquet" for j in range(oof_settings(config).oof_folds)]


def experiment_variants(config: Mapping[str, Any], name: str, variants: str) -> str:
    """Variants file of an experiment instance: the fold's copy for ``E__fold{k}``, the out-of-fold
    group's copy for ``E__oof{j}`` / ``E__fold{k}__oof{j}``, else ``variants``.

    The train rule must take its ``variants`` input from here too, so a fold trains on its own split.
    """
    parent, oof = split_oof_name(name)
    if oof is not None:
        n = oof_settings(config).oof_folds
        if oof >= n:
            raise ValueError(f"{name}: out-of-fold group {oof} does not exist (stacking.oof_folds is {n})")
        _, fold = split_fold_name(parent)
        scope = "main" if fold is None else f"fold{fold}"
        experiment_variants(config, parent, variants)  # checks the fold
        return oof_variants_paths(config, scope)[oof]
    _, fold = split_fold_name(name)
    if fold is None:
        return variants
    k = crossval_settings(config).k
    if fold >= k:
        raise ValueError(f"{name}: fold {fold} does not exist (evaluation.cross_validation has {k} folds)")
    return fold_variants_paths(config)[fold]


def resolve_instance(config: Mapping[str, Any], name: str):
    """The :class:`metasplice.experiments.registry.Experiment` behind an instance name (``E``, ``E__fold{k}``,
    ``E__oof{j}``, ``E__fold{k}__oof{j}``)."""
    return experiment_for(instance_experiment(name), config)


def instance_experiment(name: str) -> str:
    """The configured experiment behind an instance name (fold and out-of-fold suffixes removed)."""
    return split_fold_name(split_oof_name(name)[0])[0]


def experiment_kind(config: Mapping[str, Any], name: str) -> str:
    """``trained`` or the meta-model kind (``stacked``) of an instance's experiment."""
    experiment = instance_experiment(name)
    experiments = config.get("experiments") or {}
    if experiment not in experiments:
        raise ValueError(f"unknown experiment {experiment!r}; configured experiments: {', '.join(experiments)}")
    return spec_kind(experiments[experiment])


def ensemble_params(config: Mapping[str, Any], name: str) -> dict:
    """The ensemble settings of instance ``name`` (rule evaluate's params; empty for other kinds)."""
    if experiment_kind(config, name) != "ensemble":
        return {}
    return ensemble_for(name, config).to_dict()


def stack_config(config: Mapping[str, Any], name: str):
    """The :class:`metasplice.experiments.stacking.StackConfig` of stacked instance ``name`` (members and bases checked)."""
    experiment = instance_experiment(name)
    experiments = config.get("experiments") or {}
    sc = StackConfig.from_spec(experiment, experiments.get(experiment) or {}, config.get("dataset") == "demo")
    for m in sc.members:
        if m not in experiments:
            raise ValueError(f"experiment {experiment!r}: member {m!r} is not a configured experiment")
        if spec_kind(experiments[m]) != "trained":
            raise ValueError(
                f"experiment {experiment!r}: member {m!r} is a {spec_kind(experiments[m])} model; members "
                "must be trained experiments"
            )
    bases = config.get("base_models") or {}
    missing = [b for b in sc.bases if b not in bases]
    if missing:
        raise ValueError(
            f"experiment {experiment!r}: base models {missing} are not configured under base_models "
            f"(configured: {', '.join(bases) or 'none'})"
        )
    return sc


def stacked_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, str]:
    """Inputs of rule train_stacked for instance ``name`` (``S`` or ``S__fold{k}``): its variants, each
    base model's scores and deltas, and per member the full model's validation/test predictions, its
    checkpoint, and every out-of-fold instance's predictions with the variants file it trained from."""
    sc = stack_config(config, name)
    _, fold = split_fold_name(name)
    inputs = {"variants": experiment_variants(config, name, variants)}
    for b in sc.bases:
        inputs[f"scores__{b}"] = scores_path(b)
        inputs[f"deltas__{b}"] = deltas_path(b)
    for m in sc.members:
        inst = m if fold is None else fold_name(m, fold)
        inputs[f"predictions__{m}"] = eval_path(inst, "predictions.parquet")
        inputs[f"model__{m}"] = model_path(inst, "model.pt")
        for j in range(oof_settings(config).oof_folds):
            oof = oof_name(inst, j)
            inputs[f"oof_predictions__{m}__{j}"] = eval_path(oof, "predictions.parquet")
            inputs[f"oof_variants__{m}__{j}"] = experiment_variants(config, oof, variants)
    return inputs


def stacked_params(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Params of rule train_stacked (what reruns it): the stacked config, the settings of its base
    models that determine their scores, and the window orientation of its members."""
    sc = stack_config(config, name)
    bases = {b: scoring_settings(config, b) for b in sc.bases}
    return {
        "stack": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(sc).items()},
        "base_models": bases,
        "strand_oriented": bool((config.get("sequences") or {}).get("strand_oriented", True)),
        "regions": dict(config.get("regions") or {}),
    }


def scoring_settings(config: Mapping[str, Any], base: str) -> dict[str, Any]:
    """The settings of base model ``base`` that determine its scores, as a stacked model records them
    for scoring VCFs later: a Pangolin base reads the copies rule fetch_pangolin_weights checked
    (the folder :data:`PANGOLIN_MODELS`, the same bytes whatever source ``weights`` names)."""
    settings = {k: v for k, v in (config["base_models"][base] or {}).items() if k in SCORING_KEYS}
    if settings.get("kind") == "pangolin":
        settings["weights"] = [PANGOLIN_MODELS]
    return settings


def instance_train_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, str]:
    """Inputs of the train rule for an instance: the experiment's own, with a fold's variants file."""
    inputs = dict(train_inputs(resolve_instance(config, name)))
    inputs["variants"] = experiment_variants(config, name, variants)
    return inputs


def evaluate_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, str]:
    """Inputs of rule evaluate for experiment instance ``name``: the trained model, the windows and
    variants it was trained from (a fold's for ``E__fold{k}``), the reference base model's scores.
    A stacked instance: its model directory's files instead of a model and windows."""
    kind = experiment_kind(config, name)
    if kind == "ensemble":
        return ensemble_inputs(config, name, variants)
    if kind == "stacked":
        stack_config(config, name)
        return {
            "stacker": model_path(name, "stacker.joblib"),
            "model_json": model_path(name, "model.json"),
            "features": model_path(name, "features.parquet"),
            "variants": experiment_variants(config, name, variants),
            "reference": scores_path(reference_base(config)),
        }
    experiment = resolve_instance(config, name)
    trained_from = instance_train_inputs(config, name, variants)
    inputs = {
        "model": model_path(name, "model.pt"),
        "variants": trained_from["variants"],
        "sequences": trained_from["sequences"],
        "reference": scores_path(reference_base(config)),
    }
    if experiment.task in SCORE_TASKS:
        inputs["targets"] = scores_path(experiment.base)
    if "hf_model" in trained_from:  # a local Hugging Face snapshot the checkpoint is rebuilt from
        inputs["hf_model"] = trained_from["hf_model"]
    return inputs


def evaluate_cv_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict[str, list[str] | str]:
    """Inputs of rule evaluate_cv: every evaluated fold of experiment ``name``."""
    folds = range(crossval_settings(config).k)
    return {
        "predictions": [eval_path(f"{name}__fold{k}", "predictions.parquet") for k in folds],
        "metrics": [eval_path(f"{name}__fold{k}", "metrics.json") for k in folds],
        "variants": variants,
        "reference": scores_path(reference_base(config)),
    }


def report_inputs(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Inputs of rule report: evaluation outputs and training histories only (no model is run).

    With ``split.cv`` (a one-locus set) every row is the pooled out-of-fold evaluation
    (``results/eval_cv/...``); training curves and importances are fold 0's."""
    exps, bases = report_experiments(config), baseline_bases(config)
    if locus_cv(config):
        return {
            "metrics": [f"{RESULTS}/eval_cv/{e}/metrics.json" for e in exps],
            "predictions": [f"{RESULTS}/eval_cv/{e}/predictions.parquet" for e in exps],
            "histories": [
                model_path(fold_name(e, 0), "history.tsv") for e in exps if experiment_kind(config, e) == "trained"
            ],
            "importance": [
                model_path(fold_name(e, 0), "importance.tsv") for e in exps if experiment_kind(config, e) == "stacked"
            ],
            "baseline_metrics": [f"{RESULTS}/eval_cv/baseline/{b}/metrics.json" for b in bases],
            "baseline_predictions": [f"{RESULTS}/eval_cv/baseline/{b}/predictions.parquet" for b in bases],
        }
    inputs = {
        "metrics": [eval_path(e, "metrics.json") for e in exps],
        "predictions": [eval_path(e, "predictions.parquet") for e in exps],
        "histories": [model_path(e, "history.tsv") for e in exps if experiment_kind(config, e) == "trained"],
        "importance": [model_path(e, "importance.tsv") for e in exps if experiment_kind(config, e) == "stacked"],
        "baseline_metrics": [eval_path(f"baseline/{b}", "metrics.json") for b in bases],
        "baseline_predictions": [eval_path(f"baseline/{b}", "predictions.parquet") for b in bases],
    }
    if crossval_folds(config):
        inputs["cv_metrics"] = [f"{RESULTS}/eval_cv/{e}/metrics.json" for e in exps]
        inputs["cv_predictions"] = [f"{RESULTS}/eval_cv/{e}/predictions.parquet" for e in exps]
        inputs["cv_baseline_metrics"] = [f"{RESULTS}/eval_cv/baseline/{b}/metrics.json" for b in bases]
        inputs["cv_baseline_predictions"] = [f"{RESULTS}/eval_cv/baseline/{b}/predictions.parquet" for b in bases]
    return inputs


def report_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Params of rule report: the row names and what the text says about the test set."""
    exps = report_experiments(config)
    sweeps = {
        name: [c for c in children if c["experiment"] in exps]
        for name, children in (config.get("_sweeps") or {}).items()
    }
    return {
        "experiments": exps,
        "sweeps": {name: children for name, children in sweeps.items() if children},
        "trained": [e for e in exps if experiment_kind(config, e) == "trained"],
        "stacked": [e for e in exps if experiment_kind(config, e) == "stacked"],
        "baselines": baseline_bases(config),
        "cross_validation": bool(crossval_folds(config)) and not locus_cv(config),
        "reference": reference_base(config),
        "test_chroms": list((config.get("split") or {}).get("test_chroms") or ["chr21", "chr22"]),
        "test_description": test_description(config),
    }


def test_description(config: Mapping[str, Any]) -> str:
    """What the report's rows are measured on: the test chromosomes, or a one-locus set's pooled folds."""
    if locus_cv(config):
        cv = crossval_settings(config)
        grouping = f"{cv.block_size} nt blocks" if cv.group_by == "block" else f"{cv.group_by}s"
        return (
            f"out-of-fold predictions of {cv.k} folds of whole {grouping}, pooled: every labelled variant "
            "predicted once by a model that never saw its group (label Splice-altering vs Normal)"
        )
    chroms = list((config.get("split") or {}).get("test_chroms") or ["chr21", "chr22"])
    return "variants on " + ", ".join(chroms) + " (label Splice-altering vs Normal)"


def predict_section(config: Mapping[str, Any]) -> dict:
    """The ``predict`` config section (empty when absent: nothing is scored)."""
    return dict(config.get("predict") or {})


def predict_experiment_kind(config: Mapping[str, Any], experiment: str) -> str:
    """``stacked`` or ``trained``: the kind of model directory experiment ``experiment`` leaves."""
    experiments = config.get("experiments") or {}
    if experiment not in experiments:
        raise ValueError(
            f"config predict: experiment {experiment!r} is not defined under `experiments` "
            f"(defined: {', '.join(experiments) or 'none'})"
        )
    value = spec_kind(experiments[experiment])
    if value not in ("stacked", "trained"):
        raise ValueError(
            f"config predict: experiment {experiment!r} is a meta-model of kind {value!r}, which "
            "leaves no model directory to score VCFs with; name a stacked or trained experiment"
        )
    return value


def predict_targets(config: Mapping[str, Any]) -> list[str]:
    """Outputs of rule score_vcf for every VCF of ``predict.vcfs`` (none when it is empty)."""
    section = predict_section(config)
    vcfs = dict(section.get("vcfs") or {})
    if not vcfs:
        return []
    experiment = str(section.get("experiment") or "")
    if not experiment:
        raise ValueError(
            "config predict.vcfs lists VCFs but predict.experiment is empty: name the experiment "
            "(a key of `experiments`) whose model scores them"
        )
    predict_experiment_kind(config, experiment)
    bad = [n for n in vcfs if not _NAME.fullmatch(str(n))]
    if bad:
        raise ValueError(
            f"config predict.vcfs: names {bad} may only hold letters, digits, '_' and '-' (they become file names)"
        )
    return [
        f"{RESULTS}/predict/{experiment}/{name}{suffix}"
        for name in vcfs
        for suffix in (".vcf.gz", ".tsv", ".skipped.tsv")
    ]


def score_vcf_inputs(
    config: Mapping[str, Any], experiment: str, name: str, genome: str, annotation: str
) -> dict[str, str]:
    """Inputs of rule score_vcf: the VCF, the reference and annotation, the model's files."""
    vcfs = dict(predict_section(config).get("vcfs") or {})
    if name not in vcfs:
        raise ValueError(f"config predict.vcfs has no VCF named {name!r} (named: {', '.join(vcfs) or 'none'})")
    inputs = {"vcf": str(vcfs[name]), "genome": genome, "fai": f"{genome}.fai", "annotation": annotation}
    return {**inputs, **model_inputs(config, experiment)}


def model_inputs(config: Mapping[str, Any], experiment: str) -> dict[str, str]:
    """The files of experiment ``experiment``'s model directory that scoring a VCF reads."""
    model = f"{RESULTS}/models/{experiment}"
    if predict_experiment_kind(config, experiment) == "stacked":
        pangolin = [b for b in stack_config(config, experiment).bases if base_model_weights(config, b)]
        if pangolin:
            raise ValueError(
                f"stacked experiment {experiment!r} has Pangolin base model(s) {pangolin} among its features; "
                "scoring VCFs with Pangolin features is not supported yet. Name a stacked experiment whose "
                "`bases` are SpliceAI-kind models only, or a trained experiment"
            )
        return {"model_json": f"{model}/model.json", "stacker": f"{model}/stacker.joblib"}
    return {"model": f"{model}/model.pt"}


def score_vcf_runtime(config: Mapping[str, Any]) -> dict[str, Any]:
    """Runtime settings of rule score_vcf, read by its script from the config: device, batch and chunk sizes."""
    section = predict_section(config)
    return {
        "device": str(section.get("device", "auto")),
        "batch_size": section.get("batch_size"),
        "chunk_size": int(section.get("chunk_size", 2000)),
    }


def score_vcf_params(config: Mapping[str, Any], experiment: str) -> dict[str, Any]:
    """Settings of rule score_vcf that change its output (a change reruns it): the model directory and how
    its inputs were made. How it runs (device, batch and chunk sizes) is :func:`score_vcf_runtime`."""
    params: dict[str, Any] = {
        "model_dir": f"{RESULTS}/models/{experiment}",
        "regions": dict(config.get("regions") or {}),
    }
    if predict_experiment_kind(config, experiment) == "trained":
        reference = reference_base(config)
        settings = dict((config.get("base_models") or {}).get(reference) or {})
        keep = (*SCORING_KEYS, "engine")
        params["base"] = {reference: {k: settings[k] for k in keep if k in settings}}
        params["strand_oriented"] = bool((config.get("sequences") or {}).get("strand_oriented", True))
    return params


def ensemble_inputs(config: Mapping[str, Any], name: str, variants: str) -> dict:
    """Inputs of an ensemble evaluation rule for instance ``name``: the members' predictions (their
    ``__fold{k}`` instances for a fold), the variants file and the reference base model's scores."""
    _, fold = split_fold_name(name)
    suffix = "" if fold is None else f"__fold{fold}"
    ens = ensemble_for(name, config)
    return {
        "predictions": [eval_path(f"{m}{suffix}", "predictions.parquet") for m in ens.members],
        "variants": experiment_variants(config, name, variants),
        "reference": scores_path(reference_base(config)),
    }


def train_inputs(experiment: Experiment) -> dict[str, str]:
    """Files the train rule reads: windows of the experiment's context, variants, validated targets
    (delta task), and a local Hugging Face snapshot the pipeline builds (under resources/hf_models/)."""
    inputs = {
        "sequences": f"{RESULTS}/sequences/ctx{experiment.context}.npz",
        "variants": f"{RESULTS}/variants/variants.parquet",
    }
    if experiment.task in SCORE_TASKS:  # targets or labels derived from the base model's scores
        inputs["scores"] = scores_path(experiment.base)
    model_path = getattr(experiment.model_config, "model_path", "")
    if model_path.startswith("resources/hf_models/"):
        inputs["hf_model"] = model_path
    return inputs


def planned_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config the plan works from, computed and never written back: a copy with every sweep
    expanded into its children (kept under ``_sweeps`` for the report), each dataset's
    ``coordinate_column`` resolved from its build, and the group gaps checked."""
    expanded, sweeps = expand_config(config)
    datasets = {
        name: _checkout_paths(
            {**ds, "coordinate_column": ds.get("coordinate_column") or coordinate_column_for(ds["build"])}
        )
        for name, ds in (config.get("datasets") or {}).items()
    }
    planned = {**copy.deepcopy(expanded), "datasets": datasets, "_sweeps": sweeps}
    check_group_gaps(planned)
    return planned


def checkout_path(path: str) -> str:
    """``path`` as given, or, when it is relative, missing from the working directory and a file of this
    checkout (the data shipped under tests/, used from another working directory), that file's path.
    Paths under the folders the workflow writes (resources/, results/) are never redirected."""
    text = str(path or "")
    if not text or is_url(text) or is_generated(text) or Path(text).is_absolute() or Path(text).exists():
        return text
    shipped = REPOSITORY / text
    return str(shipped) if shipped.exists() else text


def _checkout_paths(dataset: dict) -> dict:
    """A dataset's local genome and labels paths through :func:`checkout_path`."""
    out = copy.deepcopy(dataset)
    if isinstance(out.get("genome"), Mapping) and out["genome"].get("path"):
        out["genome"]["path"] = checkout_path(out["genome"]["path"])
    for key in ("vcf", "tsv"):
        if isinstance(out.get("labels"), Mapping) and out["labels"].get(key):
            out["labels"][key] = checkout_path(out["labels"][key])
    return out


def dataset_settings(config: Mapping[str, Any]) -> dict:
    """Settings of the selected dataset (``dataset`` names a key of ``datasets``); it must name its labels:
    a SpliceVarDB export (``splicevardb``) or a labelled VCF/TSV (``labels``), not both."""
    name = config["dataset"]
    datasets = config.get("datasets") or {}
    if name not in datasets:
        raise ValueError(f"config: dataset {name!r} is not defined under `datasets` (defined: {', '.join(datasets)})")
    ds = datasets[name]
    if bool(ds.get("splicevardb")) == bool(ds.get("labels")):
        raise ValueError(
            f"config: datasets.{name} needs exactly one source of labels: `splicevardb` (a SpliceVarDB export) "
            "or `labels` (a labelled VCF with `vcf` and `info_key`, or a TSV with `tsv`)"
        )
    return ds


def prepare_variants_inputs(config: Mapping[str, Any], splicevardb: str, genome: str, annotation: str) -> dict:
    """Inputs of rule prepare_variants: the labels (the fetched SpliceVarDB export, or the labelled VCF/TSV
    itself), the genome with its index and the annotation."""
    ds = dataset_settings(config)
    inputs = {"genome": genome, "fai": f"{genome}.fai", "annotation": annotation}
    if ds.get("labels"):
        labels = LabelsConfig.from_dict(ds["labels"])
        inputs["labels"] = labels.path
    else:
        inputs["splicevardb"] = splicevardb
    return inputs


def prepare_variants_labels(config: Mapping[str, Any]) -> dict:
    """The selected dataset's ``labels`` section (a param of rule prepare_variants; empty for SpliceVarDB)."""
    return dict(dataset_settings(config).get("labels") or {})


PANGOLIN_MODELS = "resources/pangolin/models"  # where rule fetch_pangolin_weights puts the 12 state dicts


def base_model_weights(config: Mapping[str, Any], base: str) -> list[str]:
    """Weight files rule base_model_scores reads for ``base``: Pangolin's 12 fetched state dicts in
    the official order (other kinds read their configured weights themselves)."""
    cfg = (config.get("base_models") or {}).get(base) or {}
    if cfg.get("kind") != "pangolin":
        return []
    return [f"{PANGOLIN_MODELS}/{name}" for name in pangolin_weight_names()]


def pangolin_weight_names() -> list[str]:
    return [weight_name(r, j) for j in range(len(TISSUES)) for r in REPLICATES]


def pangolin_weight_source(config: Mapping[str, Any], name: str) -> dict[str, str]:
    """Source of one Pangolin state dict: the file of that name in the folder a ``kind: pangolin`` base
    model's ``weights`` gives, else the pinned URL (github tkzeng/Pangolin at the pinned commit); and
    its sha256."""
    folders = [
        str(w)
        for cfg in (config.get("base_models") or {}).values()
        if (cfg or {}).get("kind") == "pangolin"
        for w in (cfg.get("weights") or [])[:1]
    ]
    if not folders:
        return {"source": PANGOLIN_URL.format(commit=PANGOLIN_COMMIT, name=name), "sha256": PANGOLIN_WEIGHTS[name]}
    folder = Path(folders[0])
    if not folder.is_absolute() and not folder.exists() and (REPOSITORY / folder).exists():
        folder = REPOSITORY / folder  # a folder of this checkout (the shipped copies), from another working directory
    source = str(folder / name)
    return {"source": source, "sha256": PANGOLIN_WEIGHTS[name]}
