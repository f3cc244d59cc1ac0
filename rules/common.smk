import os
import sys

from snakemake.utils import min_version, validate

# The workflow imports the metasplice package of this checkout, installed or not.
sys.path.insert(0, workflow.basedir)

import metasplice.evaluation.evaluate as mseval
from metasplice.evaluation.evaluate import REPORT_OUTPUTS
from metasplice.predict.annotate import predict_targets
from metasplice.models.common import task_config_dict
from metasplice.experiments.sweeps import expand_sweeps
from metasplice.data.variants import check_group_gaps, coordinate_column_for
from metasplice.workflow import code_digest

min_version("9.0")

# Jobs import the metasplice package of this checkout (also inside conda environments, which
# deliberately do not install it), so a job always runs the code of the workflow that planned it.
_pythonpath = [workflow.basedir, *filter(None, [os.getenv("PYTHONPATH")])]
os.environ.update(PYTHONPATH=os.pathsep.join(_pythonpath))


validate(config, schema="schemas/config.schema.yaml")


_SCRIPTS = os.path.join(str(workflow.current_basedir), os.pardir, "workflow_scripts")


def script_code(name):
    """Digest of workflow_scripts/{name}.py and the package code it imports: a param of the cached rules,
    whose cache key would otherwise miss a change of that code."""
    return code_digest(os.path.join(_SCRIPTS, f"{name}.py"))


# A dataset's coordinate column follows its build unless set (GRCh37 -> hg19, else hg38), and every
# group_gap must cover the longest sequence window so no window sits on both sides of a split.
for _dataset in config["datasets"].values():
    _dataset.setdefault("coordinate_column", coordinate_column_for(_dataset["build"]))
check_group_gaps(config)

# Sweeps: an experiment with `sweep:` becomes one experiment per combination of its values
# (metasplice/sweeps.py); the sweep's children are kept under `_sweeps` for the report.
config["experiments"], config["_sweeps"] = expand_sweeps(
    config["experiments"], demo=config["dataset"] == "demo"
)


wildcard_constraints:
    build=r"[A-Za-z0-9_.-]+",
    base=r"[A-Za-z0-9_]+",
    ctx=r"\d+",
    experiment=r"[A-Za-z0-9_.-]+",


def dataset_cfg():
    """Settings of the selected dataset (config `dataset` names a key of `datasets`)."""
    name = config["dataset"]
    if name not in config["datasets"]:
        raise ValueError(
            f"config: dataset {name!r} is not defined under `datasets` "
            f"(defined: {', '.join(config['datasets'])})"
        )
    return config["datasets"][name]


BUILD = dataset_cfg()["build"]
GENOME = f"resources/genome/{BUILD}.fa"
ANNOTATION = f"resources/annotation/{BUILD}.tsv"
SPLICEVARDB = "resources/splicevardb/splicevardb.tsv"
VARIANTS = "results/variants/variants.parquet"


def base_model_cfg(wildcards):
    """Settings of one base model (config `base_models.{base}`)."""
    models = config.get("base_models", {})
    if wildcards.base not in models:
        raise ValueError(
            f"config: base model {wildcards.base!r} is not defined under `base_models` "
            f"(defined: {', '.join(models) or 'none'})"
        )
    return models[wildcards.base]


# Settings that change a base model's numbers; the others (device, batch size, threads, gpu, engine)
# only change how fast they come, so editing them does not rerun the scoring.
SCORING_KEYS = ("kind", "weights", "flanking_size", "distance", "mask", "precision")


def base_model_scoring(wildcards):
    """The part of `base_models.{base}` that determines the scores (the rule's params)."""
    cfg = base_model_cfg(wildcards)
    return {key: cfg[key] for key in SCORING_KEYS if key in cfg}


# Training settings that only change where and how fast a model trains, not what it learns.
RUNTIME_TRAIN_KEYS = ("device", "eval_batch_size", "log_every", "compile")


def train_params(wildcards):
    """Params of training jobs (what reruns them): the resolved experiment minus GPUs, threads, device."""
    instance = mseval.resolve_instance(config, wildcards.experiment)
    exp = instance.to_dict()
    exp.pop("gpu"), exp.pop("threads")
    # options the task does not use leave the params (and so the job) unchanged
    exp["model_config"] = task_config_dict(instance.model_config)
    exp["train_config"] = {
        k: v for k, v in exp["train_config"].items() if k not in RUNTIME_TRAIN_KEYS
    }
    return exp


def final_targets():
    """Everything `snakemake --cores N` builds by default."""
    return [
        VARIANTS,
        "results/variants/summary.tsv",
        "results/variants/rejected.tsv",
        *expand("results/sequences/ctx{ctx}.npz", ctx=config["sequences"]["contexts"]),
        *REPORT_OUTPUTS,
        *predict_targets(config),
    ]
