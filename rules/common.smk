import os
import sys

from snakemake.utils import min_version, validate

# The workflow imports the metasplice package of this checkout, installed or not.
sys.path.insert(0, workflow.basedir)

from metasplice.experiments.plan import REPORT_OUTPUTS
from metasplice.experiments.plan import predict_targets
from metasplice.models.common import task_config_dict
from metasplice.workflow import code_digest
import metasplice.experiments.plan as msplan

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


# The plan's view of the CONFIG, computed once and never written back into `CONFIG`: sweeps
# expanded into their children, each dataset's coordinate column resolved from its build (GRCh37 ->
# hg19, else hg38), group gaps checked against the longest window (metasplice/experiments/plan.py).
CONFIG = msplan.planned_config(config)


wildcard_constraints:
    build=r"[A-Za-z0-9_.-]+",
    base=r"[A-Za-z0-9_]+",
    ctx=r"\d+",
    experiment=r"[A-Za-z0-9_.-]+",


def dataset_cfg():
    """Settings of the selected dataset (CONFIG `dataset` names a key of `datasets`, whose
    labels are a SpliceVarDB export or a labelled VCF/TSV)."""
    return msplan.dataset_settings(CONFIG)


BUILD = dataset_cfg()["build"]
GENOME = f"resources/genome/{BUILD}.fa"
ANNOTATION = f"resources/annotation/{BUILD}.tsv"
SPLICEVARDB = "resources/splicevardb/splicevardb.tsv"
VARIANTS = "results/variants/variants.parquet"


def base_model_cfg(wildcards):
    """Settings of one base model (CONFIG `base_models.{base}`)."""
    models = CONFIG.get("base_models", {})
    if wildcards.base not in models:
        raise ValueError(
            f"config: base model {wildcards.base!r} is not defined under `base_models` "
            f"(defined: {', '.join(models) or 'none'})"
        )
    return models[wildcards.base]


def base_model_scoring(wildcards):
    """The part of `base_models.{base}` that determines the scores (the rule's params)."""
    cfg = base_model_cfg(wildcards)
    return {key: cfg[key] for key in msplan.SCORING_KEYS if key in cfg}


# Training settings that only change where and how fast a model trains, not what it learns.
RUNTIME_TRAIN_KEYS = ("device", "eval_batch_size", "log_every", "compile")


def train_params(wildcards):
    """Params of training jobs (what reruns them): the resolved experiment minus GPUs, threads, device."""
    instance = msplan.resolve_instance(CONFIG, wildcards.experiment)
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
        *expand("results/sequences/ctx{ctx}.npz", ctx=CONFIG["sequences"]["contexts"]),
        *REPORT_OUTPUTS,
        *predict_targets(CONFIG),
    ]
