# Stacked meta-model (experiments with `model: stacked`, metasplice/stacking.py): a scikit-learn
# learner over base-model scores, annotation and the out-of-fold scores of trained member experiments.
#
#   results/stacking/{scope}/oof{j}/variants.parquet, oof_folds.tsv     rule oof_splits
#       scope "main" splits the training rows of variants.parquet, scope "fold{k}" those of
#       cross-validation fold k; member M trains as instance M__oof{j} (M__fold{k}__oof{j})
#       without group j and scores it (rules train and evaluate)
#   results/models/{experiment}/stacker.joblib, model.json, importance.tsv, features.parquet,
#       members/                                                         rule train_stacked

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
