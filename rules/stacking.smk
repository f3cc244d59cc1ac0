# Stacked meta-model (experiments with `model: stacked`, metasplice/experiments/stacking.py): each
# base model's own score or a scikit-learn learner over base-model scores, profiles, annotation and the
# out-of-fold scores of trained member experiments, chosen by grouped CV inside the training rows.
#
#   results/stacking/{scope}/oof{j}/variants.parquet, oof_folds.tsv     rule oof_splits
#       scope "main" splits the training rows of variants.parquet, scope "fold{k}" those of
#       cross-validation fold k; member M trains as instance M__oof{j} (M__fold{k}__oof{j})
#       without group j and scores it (rules train and evaluate)
#   results/models/{experiment}/stacker.joblib, model.json, stacker.json (the choice), inner_cv.tsv
#       (every candidate's inner-CV ROC-AUC), importance.tsv, features.parquet, members/  rule train_stacked

import dataclasses


wildcard_constraints:
    scope=r"main|fold\d+",


rule oof_splits:
    input:
        lambda wc: msplan.oof_scope_variants(CONFIG, wc.scope, VARIANTS),
    output:
        variants=expand(
            "results/stacking/{{scope}}/oof{j}/variants.parquet",
            j=range(msplan.oof_settings(CONFIG).oof_folds),
        ),
        summary="results/stacking/{scope}/oof_folds.tsv",
    log:
        "logs/oof_splits/{scope}.log",
    conda:
        "../envs/metasplice.yaml"
    params:
        stacking=lambda wc: dataclasses.asdict(msplan.oof_settings(CONFIG)),
    script:
        "../workflow_scripts/oof_splits.py"


rule train_stacked:
    input:
        unpack(lambda wc: msplan.stacked_inputs(CONFIG, wc.experiment, VARIANTS)),
    output:
        stacker="results/models/{experiment}/stacker.joblib",
        model_json="results/models/{experiment}/model.json",
        choice="results/models/{experiment}/stacker.json",
        inner_cv="results/models/{experiment}/inner_cv.tsv",
        importance="results/models/{experiment}/importance.tsv",
        features="results/models/{experiment}/features.parquet",
        members=directory("results/models/{experiment}/members"),
    log:
        "logs/train_stacked/{experiment}.log",
    benchmark:
        "results/benchmarks/train_stacked/{experiment}.tsv"
    conda:
        "../envs/metasplice.yaml"
    threads: 2
    params:
        stacked=lambda wc: msplan.stacked_params(CONFIG, wc.experiment),
    script:
        "../workflow_scripts/train_stacked.py"
