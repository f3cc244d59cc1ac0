"""report: evaluation outputs (+ training histories) -> summary.md, summary.tsv, breakdowns.tsv, figures."""

from metasplice.evaluation.report import FIGURES, Entry, build_report
from metasplice.workflow import run_logged


def main(sm) -> None:
    inp, p = sm.input, sm.params.report
    # rows are named after the model alone (a base model's row: its name); the set column of
    # summary.tsv tells the test split from the pooled cross-validation folds
    entries = [Entry(b, m, pr) for b, m, pr in zip(p["baselines"], inp.baseline_metrics, inp.baseline_predictions)]
    histories = dict(zip(p["trained"], inp.histories))
    entries += [Entry(e, m, pr, histories.get(e)) for e, m, pr in zip(p["experiments"], inp.metrics, inp.predictions)]
    if p["cross_validation"]:
        entries += [
            Entry(b, m, pr) for b, m, pr in zip(p["baselines"], inp.cv_baseline_metrics, inp.cv_baseline_predictions)
        ]
        entries += [Entry(e, m, pr) for e, m, pr in zip(p["experiments"], inp.cv_metrics, inp.cv_predictions)]
    out = sm.output
    build_report(
        entries,
        summary_md=out.summary_md,
        summary_tsv=out.summary_tsv,
        regions_tsv=out.breakdowns,
        tasks_tsv=out.tasks,
        figures={name: getattr(out, name) for name in FIGURES},
        meta={
            "reference": p["reference"],
            "test_description": p["test_description"],
        },
        importance=dict(zip(p["stacked"], inp.importance)),
        sweeps=p["sweeps"],
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
