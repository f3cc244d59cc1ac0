# Training: one meta-model per experiment of CONFIG["experiments"] (metasplice/experiments.py
# resolves and validates each one; metasplice/train.py trains it).


from metasplice.experiments.registry import TINY_HF_MODEL


rule build_tiny_hf_model:
    output:
        directory(TINY_HF_MODEL),
    log:
        "logs/build_tiny_hf_model.log",
    conda:
        "../envs/train.yaml"
    shell:
        "python -m metasplice.models.tiny_hf {output} > {log} 2>&1"


rule train:
    input:
        unpack(
            lambda wildcards: msplan.instance_train_inputs(
                CONFIG, wildcards.experiment, VARIANTS
            )
        ),
    output:
        model="results/models/{experiment}/model.pt",
        history="results/models/{experiment}/history.tsv",
    log:
        "logs/train/{experiment}.log",
    benchmark:
        "results/benchmarks/train/{experiment}.tsv"
    wildcard_constraints:
        experiment="[A-Za-z0-9_.-]+",
    conda:
        "../envs/train.yaml"
    threads: lambda wildcards: msplan.resolve_instance(CONFIG, wildcards.experiment).threads
    resources:
        gpu=lambda wildcards: msplan.resolve_instance(CONFIG, wildcards.experiment).gpu,
    params:
        experiment=train_params,
        state="results/models/{experiment}/train_state.pt",
    script:
        "../workflow_scripts/train.py"
