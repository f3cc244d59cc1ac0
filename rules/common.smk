import os

from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, schema="schemas/config.schema.yaml")


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


def local_source(entry):
    """Input file for a fetch rule: the configured local path when there is one, else nothing
    (the script downloads the URL itself, so dry runs never touch the network)."""
    path = entry.get("path") or ""
    return [path] if path else []


def final_targets():
    """Everything `snakemake --cores N` builds by default."""
    return [
        VARIANTS,
        "results/variants/summary.tsv",
        "results/variants/rejected.tsv",
    ]
