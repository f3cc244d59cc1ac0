# Inputs of the chain: the SpliceVarDB export, the reference FASTA and the gene annotation table.
#
# A source is a local path (an input of the rule, so Snakemake tracks it) or a URL that the script
# downloads itself: URLs are never rule inputs, so dry runs and DAG building stay offline (no HTTP
# storage plugin). Changing a configured source reruns the rule through its params, and so does a change
# of the package code the script runs (script_code: these rules are cached between workflows). Access tokens
# come from the environment variable named by `token_env`; they are never in CONFIG or logs.
# A missing source fails while the DAG is built, with how to obtain it (metasplice.data.fetch).
#
# Genome output form: a PLAIN FASTA resources/genome/{build}.fa with its .fai. Every reader in the
# chain (pysam, pyfaidx as used by the SpliceAI CLI, samtools) takes it, and random access needs no
# decompression. gzip and bgzip downloads (Ensembl and UCSC ship gzip) are decompressed; a local
# plain FASTA is symlinked (genome.link: true, the default) or copied (link: false).
# metasplice.data.fetch.prepare_fasta also writes bgzip (+ .fai, .gzi) for a *.fa.gz destination.

from metasplice.data import fetch as msfetch


rule fetch_splicevardb:
    input:
        lambda wc: msfetch.rule_input(dataset_cfg(), CONFIG["dataset"], "splicevardb"),
    output:
        SPLICEVARDB,
    log:
        "logs/fetch/splicevardb.log",
    cache: "omit-software"
    conda:
        "../envs/metasplice.yaml"
    params:
        fetch=lambda wc: msfetch.rule_params(
            dataset_cfg(),
            CONFIG["dataset"],
            "splicevardb",
        ),
        code=script_code("fetch_splicevardb"),
    script:
        "../workflow_scripts/fetch_splicevardb.py"


rule fetch_genome:
    input:
        lambda wc: msfetch.rule_input(
            dataset_cfg(), CONFIG["dataset"], "genome", wc.build
        ),
    output:
        fasta="resources/genome/{build}.fa",
        fai="resources/genome/{build}.fa.fai",
    log:
        "logs/fetch/genome_{build}.log",
    cache: "omit-software"
    conda:
        "../envs/metasplice.yaml"
    params:
        fetch=lambda wc: msfetch.rule_params(
            dataset_cfg(),
            CONFIG["dataset"],
            "genome",
        ),
        code=script_code("fetch_genome"),
    script:
        "../workflow_scripts/fetch_genome.py"


rule fetch_annotation:
    input:
        lambda wc: msfetch.annotation_input(dataset_cfg(), CONFIG["dataset"], wc.build),
    output:
        "resources/annotation/{build}.tsv",
    log:
        "logs/fetch/annotation_{build}.log",
    cache: "omit-software"
    conda:
        "../envs/metasplice.yaml"
    params:
        source=lambda wc: str(dataset_cfg()["annotation"]),
        code=script_code("fetch_annotation"),
    script:
        "../workflow_scripts/fetch_annotation.py"


# Pangolin's 12 official state dicts (GPL-3.0, github tkzeng/Pangolin at a pinned commit), from the
# folder a `kind: pangolin` base model's `weights` names, else from the pinned URLs; sha256 checked.
rule fetch_pangolin_weights:
    input:
        lambda wc: [
            s
            for s in [msplan.pangolin_weight_source(CONFIG, wc.name)["source"]]
            if not msfetch.is_url(s)
        ],
    output:
        "resources/pangolin/models/{name}",
    log:
        "logs/fetch/pangolin_{name}.log",
    wildcard_constraints:
        name=r"final\.[123]\.[0246]\.3\.v2",
    conda:
        "../envs/metasplice.yaml"
    params:
        fetch=lambda wc: msplan.pangolin_weight_source(CONFIG, wc.name),
    script:
        "../workflow_scripts/fetch_pangolin_weights.py"
