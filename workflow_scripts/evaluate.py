"""evaluate: a trained experiment on its validation + test windows -> predictions.parquet, metrics.json.

A stacked experiment is evaluated from its model directory (features.parquet, stacker.joblib), an
ensemble from its members' predictions.
Also the cross-validation aggregation (rule evaluate_cv): the evaluated folds E__fold{k} -> pooled
predictions.parquet and metrics.json of E.
"""

from pathlib import Path

import torch

from metasplice.evaluation.crossval import aggregate_experiment_files
from metasplice.evaluation.evaluate import EvalConfig, evaluate_experiment_files
from metasplice.experiments.ensembles import EnsembleConfig, evaluate_ensemble_files
from metasplice.experiments.plan import evaluation_runtime
from metasplice.experiments.stacking import evaluate_stacked_files
from metasplice.workflow import run_logged


def main(sm) -> None:
    cfg = EvalConfig.from_dict({**sm.params.evaluation, **evaluation_runtime(sm.config)})
    common = {  # the arguments every evaluation takes
        "variants_path": sm.input.variants,
        "reference_scores_path": sm.input.reference,
        "predictions_out": sm.output.predictions,
        "metrics_out": sm.output.metrics,
        "experiment": sm.wildcards.experiment,
        "cfg": cfg,
    }
    if sm.rule == "evaluate_cv":
        aggregate_experiment_files(
            fold_predictions=list(sm.input.predictions), fold_metrics=list(sm.input.metrics), **common
        )
    elif sm.params.kind == "ensemble":
        config = EnsembleConfig.from_dict(dict(sm.params.ensemble), sm.wildcards.experiment)
        evaluate_ensemble_files(
            member_predictions=dict(zip(config.members, sm.input.predictions)), config=config, **common
        )
    elif sm.params.kind == "stacked":
        evaluate_stacked_files(model_dir=Path(sm.input.stacker).parent, **common)
    else:
        torch.set_num_threads(max(1, int(sm.threads)))
        evaluate_experiment_files(
            model_path=sm.input.model,
            sequences_path=sm.input.sequences,
            targets_path=getattr(sm.input, "targets", None),
            **common,
        )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
