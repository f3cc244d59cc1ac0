"""evaluate_baseline: a base model's max delta score as the classifier score, no training ->
predictions.parquet, metrics.json. Also its cross-validated form (rule evaluate_cv_baseline)."""

from metasplice.evaluation.crossval import aggregate_baseline_files
from metasplice.evaluation.evaluate import EvalConfig, evaluate_baseline_files
from metasplice.experiments.plan import evaluation_runtime
from metasplice.workflow import run_logged


def main(sm) -> None:
    cfg = EvalConfig.from_dict({**sm.params.evaluation, **evaluation_runtime(sm.config)})
    if sm.rule == "evaluate_cv_baseline":
        aggregate_baseline_files(
            fold_variants=list(sm.input.folds),
            scores_path=sm.input.scores,
            predictions_out=sm.output.predictions,
            metrics_out=sm.output.metrics,
            base=sm.wildcards.base,
            cfg=cfg,
            reference_scores_path=sm.input.reference,
        )
        return
    evaluate_baseline_files(
        variants_path=sm.input.variants,
        scores_path=sm.input.scores,
        predictions_out=sm.output.predictions,
        metrics_out=sm.output.metrics,
        base=sm.wildcards.base,
        cfg=cfg,
        reference_scores_path=sm.input.reference,
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
