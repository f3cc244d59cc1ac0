# Evaluation and report: every experiment and every base model (a baseline row: the base model's
# max delta score, no training) is scored on the test split by metasplice.evaluation.evaluate; the report
# reads only evaluation outputs and training histories (metasplice.evaluation.report). Paths and settings
# come from metasplice.evaluation.evaluate's workflow-wiring functions.
#
#   results/eval/{experiment}/predictions.parquet, metrics.json       rule evaluate
#       (a trained model on its windows; a stacked model from its features; an ensemble from its
#       members' predictions, never retraining them)
#   results/eval/baseline/{base}/predictions.parquet, metrics.json    rule evaluate_baseline
#   results/report/summary.md, summary.tsv, breakdowns.tsv, figures/   rule report (target: tables)
#
# Cross-validation (evaluation.cross_validation.enabled): leave-one-chromosome-group-out folds; or,
# for a set from one locus (split.cv), folds of whole exons, genes or genomic blocks, whose pooled
# out-of-fold evaluation is then every row of the report.
# Fold k of experiment E is the instance "E__fold{k}", trained and evaluated like E but from
# results/crossval/fold{k}/variants.parquet (variants.parquet with that fold's split column).
#
#   results/crossval/fold{k}/variants.parquet, folds.tsv              rule crossval_folds
#   results/eval_cv/{experiment}/..., eval_cv/baseline/{base}/...     rules evaluate_cv(_baseline)

import metasplice.experiments.plan as msplan


rule evaluate:
    input:
        unpack(lambda wc: msplan.evaluate_inputs(CONFIG, wc.experiment, VARIANTS)),
    output:
        predictions="results/eval/{experiment}/predictions.parquet",
        metrics="results/eval/{experiment}/metrics.json",
    log:
        "logs/evaluate/{experiment}.log",
    benchmark:
        "results/benchmarks/evaluate/{experiment}.tsv"
    conda:
        "../envs/metasplice.yaml"
    threads: lambda wc: int(msplan.evaluation_runtime(CONFIG).get("threads", 1))
    params:
        evaluation=lambda wc: msplan.evaluation_params(CONFIG),
        kind=lambda wc: msplan.experiment_kind(CONFIG, wc.experiment),
        ensemble=lambda wc: msplan.ensemble_params(CONFIG, wc.experiment),
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_baseline:
    input:
        variants=VARIANTS,
        scores="results/targets/{base}/scores.parquet",
        reference=lambda wc: f"results/targets/{msplan.reference_base(CONFIG)}/scores.parquet",
    output:
        predictions="results/eval/baseline/{base}/predictions.parquet",
        metrics="results/eval/baseline/{base}/metrics.json",
    log:
        "logs/evaluate/baseline_{base}.log",
    benchmark:
        "results/benchmarks/evaluate/baseline_{base}.tsv"
    conda:
        "../envs/metasplice.yaml"
    params:
        evaluation=lambda wc: msplan.evaluation_params(CONFIG),
    script:
        "../workflow_scripts/evaluate_baseline.py"


rule crossval_folds:
    input:
        VARIANTS,
    output:
        folds=msplan.fold_variants_paths(CONFIG),
        summary="results/crossval/folds.tsv",
    log:
        "logs/crossval_folds.log",
    conda:
        "../envs/metasplice.yaml"
    params:
        cross_validation=lambda wc: msplan.crossval_params(CONFIG),
    script:
        "../workflow_scripts/crossval_folds.py"


rule evaluate_cv:
    input:
        unpack(lambda wc: msplan.evaluate_cv_inputs(CONFIG, wc.experiment, VARIANTS)),
    output:
        predictions="results/eval_cv/{experiment}/predictions.parquet",
        metrics="results/eval_cv/{experiment}/metrics.json",
    log:
        "logs/evaluate_cv/{experiment}.log",
    benchmark:
        "results/benchmarks/evaluate_cv/{experiment}.tsv"
    conda:
        "../envs/metasplice.yaml"
    params:
        evaluation=lambda wc: msplan.evaluation_params(CONFIG),
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_cv_baseline:
    input:
        folds=lambda wc: msplan.fold_variants_paths(CONFIG),
        scores="results/targets/{base}/scores.parquet",
        reference=lambda wc: f"results/targets/{msplan.reference_base(CONFIG)}/scores.parquet",
    output:
        predictions="results/eval_cv/baseline/{base}/predictions.parquet",
        metrics="results/eval_cv/baseline/{base}/metrics.json",
    log:
        "logs/evaluate_cv/baseline_{base}.log",
    benchmark:
        "results/benchmarks/evaluate_cv/baseline_{base}.tsv"
    conda:
        "../envs/metasplice.yaml"
    params:
        evaluation=lambda wc: msplan.evaluation_params(CONFIG),
    script:
        "../workflow_scripts/evaluate_baseline.py"


rule report:
    input:
        unpack(lambda wc: msplan.report_inputs(CONFIG)),
    output:
        headline=report(
            msplan.REPORT_FIGURES["headline"],
            caption="report/headline.rst",
            category="1. Headline",
            labels={"item": "ROC and PR: base models vs the best meta-models"},
        ),
        summary_md=report(
            msplan.REPORT_TABLES["summary_md"],
            caption="report/summary.rst",
            category="1. Headline",
            labels={"item": "summary table"},
        ),
        forest=report(
            msplan.REPORT_FIGURES["forest"],
            caption="report/forest.rst",
            category="2. Comparisons",
            labels={"item": "ROC-AUC of every row (forest plot)"},
        ),
        roc_families=report(
            msplan.REPORT_FIGURES["roc_families"],
            caption="report/roc_families.rst",
            category="2. Comparisons",
            labels={"item": "ROC curves by experiment family"},
        ),
        pr_families=report(
            msplan.REPORT_FIGURES["pr_families"],
            caption="report/pr_families.rst",
            category="2. Comparisons",
            labels={"item": "precision-recall curves by experiment family"},
        ),
        regions=report(
            msplan.REPORT_FIGURES["regions"],
            caption="report/regions.rst",
            category="2. Comparisons",
            labels={"item": "per-region metrics"},
        ),
        scatter=report(
            msplan.REPORT_FIGURES["scatter"],
            caption="report/scatter.rst",
            category="3. Diagnostics",
            labels={"item": "predicted vs target delta scores"},
        ),
        training=report(
            msplan.REPORT_FIGURES["training"],
            caption="report/training.rst",
            category="3. Diagnostics",
            labels={"item": "training curves"},
        ),
        summary_tsv=report(
            msplan.REPORT_TABLES["summary_tsv"],
            caption="report/summary_tsv.rst",
            category="4. Tables",
            labels={"item": "summary (TSV)"},
        ),
        breakdowns=report(
            msplan.REPORT_TABLES["breakdowns"],
            caption="report/breakdowns.rst",
            category="4. Tables",
            labels={"item": "by region and variant type"},
        ),
        tasks=report(
            msplan.REPORT_TABLES["tasks"],
            caption="report/tasks.rst",
            category="4. Tables",
            labels={"item": "multi-step task metrics (long format)"},
        ),
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../envs/metasplice.yaml"
    params:
        report=lambda wc: msplan.report_params(CONFIG),
    script:
        "../workflow_scripts/report.py"


# Regenerates the tables and figures from the existing evaluation outputs (never trains).
rule tables:
    input:
        msplan.REPORT_OUTPUTS,
