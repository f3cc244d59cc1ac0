"""The workflow itself: lint, formatting, and the default target run end to end on the demo."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real workflow from this checkout with ``workdir`` as its working directory."""
    cmd = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


# VCF scoring takes SpliceAI-kind base models only: the rules below score with a stacked model over
# SpliceAI's features and binary_quick's (the default `stacked` also has Pangolin's)
SPLICEAI_STACK = {"stacked_spliceai": {"model": "stacked", "bases": ["spliceai"], "members": ["binary_quick"]}}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """One full default run of the pipeline on the demo data (shared by the tests below)."""
    workdir = tmp_path_factory.mktemp("demo_run")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_lint_is_clean(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_snakefmt_would_change_nothing():
    targets = [str(ROOT / "Snakefile"), str(ROOT / "rules")]
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *targets], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_demo_variants_table(demo_run):
    import yaml

    variants = pd.read_parquet(demo_run / "results/variants/variants.parquet")
    # every good demo row kept once (the planted bad rows rejected or merged)
    assert len(variants) == yaml.safe_load((ROOT / "config.yaml").read_text())["demo"]["n_variants"]
    assert not variants.duplicated(["build", "chrom", "pos", "ref", "alt"]).any()
    assert set(variants["classification"]) == {"Splice-altering", "Normal", "Low-frequency", "Conflicting"}
    assert set(variants["strand"]) == {"+", "-"}
    test_chroms = set(variants.loc[variants["split"] == "test", "chrom"])
    assert test_chroms == {"chr21", "chr22"}
    assert set(variants.loc[variants["chrom"].isin(["chr21", "chr22"]), "split"]) == {"test"}
    assert {"train", "val"} <= set(variants["split"])
    # validation genes never appear in training
    assert not set(variants.loc[variants.split == "val", "gene"]) & set(variants.loc[variants.split == "train", "gene"])
    assert set(variants["region"]) >= {"exonic", "canonical", "splice_region", "intronic", "deep_intronic"}
    assert (variants["label"] == variants["classification"].map({"Splice-altering": 1, "Normal": 0}).fillna(-1)).all()


def test_demo_rejected_rows_have_reasons(demo_run):
    rejected = pd.read_csv(demo_run / "results/variants/rejected.tsv", sep="\t")
    reasons = " | ".join(rejected["reason"])
    for expected in ("does not match the reference", "is not in the reference FASTA", "malformed coordinate", "IUPAC"):
        assert expected in reasons
    summary = pd.read_csv(demo_run / "results/variants/summary.tsv", sep="\t").set_index("classification")
    assert summary.loc["all", "total"] == len(pd.read_parquet(demo_run / "results/variants/variants.parquet"))
    assert summary.loc["Conflicting", "total"] >= 1


def test_rerun_does_nothing(demo_run):
    proc = snakemake(demo_run, "--cores", "2", "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_demo_base_model_scores_are_row_aligned(demo_run):
    import numpy as np

    variants = pd.read_parquet(demo_run / "results/variants/variants.parquet")
    scores = pd.read_parquet(demo_run / "results/targets/spliceai/scores.parquet")
    deltas = np.load(demo_run / "results/targets/spliceai/deltas.npy")
    assert len(scores) == len(variants) and deltas.shape == (len(variants), 101, 3)
    assert scores["scored"].mean() > 0.95
    labelled = scores[variants["label"] == 0]
    assert (labelled["target_DS_AG"].dropna() == 0).all()  # Normal -> zero targets


def test_demo_scores_pangolin_and_reports_its_baseline_row(demo_run):
    """Pangolin is the default config's second base model: scores row-aligned with the variants (one
    row each, four tissues, score = max(gain, -loss)), its own baseline row with a CI, and its
    features in the stacked model."""
    import json

    import numpy as np

    variants = pd.read_parquet(demo_run / "results/variants/variants.parquet")
    scores = pd.read_parquet(demo_run / "results/targets/pangolin/scores.parquet")
    deltas = np.load(demo_run / "results/targets/pangolin/deltas.npy")
    assert len(scores) == len(variants) and deltas.shape[0] == len(variants)
    assert scores["scored"].mean() > 0.95
    assert len([c for c in scores.columns if c.startswith("gain_") and c != "gain_pos"]) == 4
    scored = scores[scores["scored"]]
    np.testing.assert_allclose(scored["score"], np.maximum(scored["gain"], -scored["loss"]), atol=1e-6)
    summary = pd.read_csv(demo_run / "results/report/summary.tsv", sep="\t").set_index("experiment")
    pangolin, spliceai = summary.loc["pangolin"], summary.loc["spliceai"]
    assert 0.85 < pangolin["roc_auc"] <= 1 and pangolin["roc_auc_low"] < pangolin["roc_auc"] < pangolin["roc_auc_high"]
    assert pangolin["n_test"] == spliceai["n_test"]  # both base models on the same test variants
    features = json.loads((demo_run / "results/models/stacked/model.json").read_text())["available_features"]
    assert any(f.startswith("pangolin") for f in features) and any(f.startswith("spliceai") for f in features)
    stacked = summary.loc["stacked"]
    assert stacked["best_base"] == max(("spliceai", "pangolin"), key=lambda b: summary.loc[b, "roc_auc"])


def test_demo_trains_every_experiment_and_reports_them_with_the_baseline(demo_run):
    import yaml

    from metasplice.experiments.registry import trained_experiments
    from metasplice.experiments.sweeps import expand_sweeps

    configured, sweeps = expand_sweeps(yaml.safe_load((ROOT / "config.yaml").read_text())["experiments"], demo=True)
    experiments = list(configured)
    assert sweeps and all(len(children) >= 2 for children in sweeps.values())
    for name in trained_experiments(configured):
        assert (demo_run / f"results/models/{name}/model.pt").stat().st_size > 0
        assert len(pd.read_csv(demo_run / f"results/models/{name}/history.tsv", sep="\t")) >= 1
        assert (demo_run / f"logs/train/{name}.log").exists()
    summary = pd.read_csv(demo_run / "results/report/summary.tsv", sep="\t")
    assert set(experiments) | {"spliceai"} <= set(summary["experiment"])
    baseline = summary.set_index("experiment").loc["spliceai"]
    assert 0.85 < baseline["roc_auc"] <= 1 and baseline["roc_auc_low"] < baseline["roc_auc"] < baseline["roc_auc_high"]
    scored = summary[summary["task"] != "localisation"]  # a localisation model has no classifier score
    assert scored["roc_auc_low"].notna().all() and scored["roc_auc_high"].notna().all()
    for figure in ("headline", "roc_families", "pr_families", "forest", "training", "scatter", "regions"):
        png = demo_run / f"results/report/figures/{figure}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_demo_stacked_model_is_not_below_spliceai_and_uses_out_of_fold_members(demo_run):
    """The stacked model has the SpliceAI scores among its features: falling below the SpliceAI row
    on the test split would mean a bug (or a broken leakage guard)."""
    import json

    summary = pd.read_csv(demo_run / "results/report/summary.tsv", sep="\t").set_index("experiment")
    stacked, baseline = summary.loc["stacked"], summary.loc["spliceai"]
    assert stacked["roc_auc"] >= baseline["roc_auc"], (stacked["roc_auc"], baseline["roc_auc"])
    assert stacked["n_test"] == baseline["n_test"]  # the same test variants
    assert stacked["roc_auc_low"] < stacked["roc_auc"] < stacked["roc_auc_high"]
    assert 0 <= stacked["p_roc_auc_bootstrap"] <= 1 and stacked["compared_with"] == "spliceai"
    model_dir = demo_run / "results/models/stacked"
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["candidate"]["kind"] in ("base", "learner") and "member_binary_quick" in meta["available_features"]
    choice = json.loads((model_dir / "stacker.json").read_text())
    inner = pd.read_csv(model_dir / "inner_cv.tsv", sep="\t")
    assert choice["chosen"] == meta["candidate"]["name"] == inner.loc[inner["chosen"], "candidate"].item()
    assert (model_dir / "members/binary_quick.pt").stat().st_size > 0
    importance = pd.read_csv(model_dir / "importance.tsv", sep="\t")
    assert set(importance["feature"]) == set(meta["feature_names"])
    # the member was trained once per out-of-fold group (3 on the demo), each scoring its held-out rows
    held_out = []
    for j in range(3):
        oof = pd.read_parquet(demo_run / f"results/stacking/main/oof{j}/variants.parquet", columns=["split"])
        pred = pd.read_parquet(demo_run / f"results/eval/binary_quick__oof{j}/predictions.parquet")
        assert (pred["split"] == "test").sum() == (oof["split"] == "test").sum() > 0
        held_out.append(set(pred.loc[pred["split"] == "test", "variant_id"]))
    assert not held_out[0] & held_out[1] and not held_out[1] & held_out[2]
    report = (demo_run / "results/report/summary.md").read_text()
    assert "## Stacked models: feature importance" in report and "### stacked" in report


def test_demo_report_has_a_section_for_every_wishlist_experiment(demo_run):
    import json

    report = (demo_run / "results/report/summary.md").read_text()
    for heading in (
        "## Effect type (step 2)",
        "## Splice-site localisation (step 3)",
        "## Multi-task model vs single-task models (step 4)",
        "## Quantile delta regression: interval calibration",
        "## Ensembles",
        "## Sweeps",
        "### cnn_sweep",
        "### quantile_delta",
        "| interval coverage |",
    ):
        assert heading in report, heading
    summary = pd.read_csv(demo_run / "results/report/summary.tsv", sep="\t").set_index("experiment")
    sweep = [f"cnn_sweep.context-{c}.hidden-{h}" for c in (401, 1001) for h in (8, 16)]
    assert set(sweep) <= set(summary.index)  # one job (and row) per combination
    assert summary.loc["cnn_ensemble", "kind"] == "ensemble"
    quantile_ensemble = json.loads((demo_run / "results/eval/quantile_ensemble/metrics.json").read_text())
    assert 0.6 < quantile_ensemble["quantile"]["coverage"]["estimate"] < 0.98
    assert not (demo_run / "results/models/cnn_ensemble").exists()  # an ensemble trains nothing
    tasks = pd.read_csv(demo_run / "results/report/tasks.tsv", sep="\t")
    coverage = tasks[(tasks["task"] == "quantile") & (tasks["metric"] == "coverage")]
    overall = coverage.loc[coverage["group"] == "all", "estimate"]
    assert len(overall) == 2  # the two seeds of quantile_delta
    assert overall.between(0.6, 0.98).all(), overall  # the 80% intervals are roughly calibrated on test
    assert {"effect_type", "localisation", "quantile", "multitask"} <= set(tasks["task"])
    with_ci = tasks.dropna(subset=["low", "estimate", "high"])  # undefined values and plain counts have none
    assert len(with_ci) > 20
    assert (with_ci["low"] <= with_ci["estimate"] + 1e-12).all() and (
        with_ci["estimate"] <= with_ci["high"] + 1e-12
    ).all()


def test_demo_score_vcf_rule_annotates_a_vcf_with_the_stacked_model(demo_run):
    """Rule score_vcf on demo test variants plus a bad line: every good record gets INFO/MetaSplice."""
    import gzip

    import yaml

    variants = pd.read_parquet(demo_run / "results/variants/variants.parquet")
    picked = variants[(variants["split"] == "test") & (variants["variant_type"] == "snv")].head(8)
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{r.chrom}\t{r.pos}\t{r.variant_id}\t{r.ref}\t{r.alt}\t.\t.\t." for r in picked.itertuples()]
    lines.insert(4, "chr1\tnot_a_position\tbad\tA\tG\t.\t.\t.")
    (demo_run / "user.vcf").write_text("\n".join(lines) + "\n")
    (demo_run / "predict.yaml").write_text(
        yaml.safe_dump(
            {"experiments": SPLICEAI_STACK, "predict": {"vcfs": {"user": "user.vcf"}, "experiment": "stacked_spliceai"}}
        )
    )
    snakemake(
        demo_run,
        "results/predict/stacked_spliceai/user.vcf.gz",
        "results/eval/stacked_spliceai/predictions.parquet",
        "--cores",
        "2",
        "--configfile",
        str(demo_run / "config.yaml"),
        str(demo_run / "predict.yaml"),
    )
    with gzip.open(demo_run / "results/predict/stacked_spliceai/user.vcf.gz", "rt") as fh:
        records = [line.rstrip("\n").split("\t") for line in fh if not line.startswith("#")]
    assert [r[2] for r in records] == list(picked["variant_id"])  # every good record, in order
    assert all("MetaSplice=" in r[7] and "SpliceAI=" in r[7] for r in records)
    table = pd.read_csv(demo_run / "results/predict/stacked_spliceai/user.tsv", sep="\t")
    assert table["probability"].between(0, 1).all() and len(table) >= len(picked)
    # the same calibrated probability as the pipeline's own evaluation of these test variants
    evaluated = pd.read_parquet(demo_run / "results/eval/stacked_spliceai/predictions.parquet").set_index("variant_id")
    ids = table["chrom"] + ":" + table["pos"].astype(str) + ":" + table["ref"] + ":" + table["alt"]
    calibrated = evaluated.loc[ids, "score_calibrated"].to_numpy()
    assert abs(table["probability"].to_numpy() - calibrated).max() < 1e-6
    skipped = pd.read_csv(demo_run / "results/predict/stacked_spliceai/user.skipped.tsv", sep="\t")
    assert list(skipped["line"]) == [5] and "POS" in skipped["reason"].iloc[0]


def test_demo_annotate_adds_the_stacked_probability_to_every_shard(demo_run, tmp_path):
    """Target annotate with annotate.experiment: shards scored by SpliceAI, then the stacked model's
    MetaSplice added per shard; the gathered SpliceAI field equals one `metasplice spliceai` run and
    MetaSplice the pipeline's own calibrated probability of those test variants."""
    import gzip

    import yaml

    from metasplice.cli import main as cli_main

    variants = pd.read_parquet(demo_run / "results/variants/variants.parquet")
    picked = variants[(variants["split"] == "test") & (variants["variant_type"] == "snv")]
    picked = picked.groupby("chrom").head(6).sort_values(["chrom", "pos"])
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{r.chrom}\t{r.pos}\t{r.variant_id}\t{r.ref}\t{r.alt}\t.\t.\t." for r in picked.itertuples()]
    (demo_run / "annotate_in.vcf").write_text("\n".join(lines) + "\n")
    section = {
        "vcfs": {"cohort": "annotate_in.vcf"},
        "reference": "resources/genome/demo.fa",
        "annotation": "resources/annotation/demo.tsv",
        "experiment": "stacked_spliceai",
        "shard_records": 4,
    }
    (demo_run / "annotate.yaml").write_text(yaml.safe_dump({"experiments": SPLICEAI_STACK, "annotate": section}))
    proc = snakemake(
        demo_run,
        "annotate",
        "results/eval/stacked_spliceai/predictions.parquet",
        "--cores",
        "2",
        "--configfile",
        str(demo_run / "config.yaml"),
        str(demo_run / "annotate.yaml"),
    )
    assert proc.stdout.count("rule annotate_predict:") + proc.stderr.count("rule annotate_predict:") >= 3
    with gzip.open(demo_run / "results/annotate/cohort.vcf.gz", "rt") as fh:
        records = [line.rstrip("\n").split("\t") for line in fh if not line.startswith("#")]
    assert [r[2] for r in records] == list(picked["variant_id"])
    one = tmp_path / "one.vcf"
    args = ["spliceai", "-I", str(demo_run / "annotate_in.vcf"), "-O", str(one), "-R"]
    args += [str(demo_run / section["reference"]), "-A", str(demo_run / section["annotation"]), "-D", "50"]
    assert cli_main([*args, "--device", "cpu", "--no-progress"]) == 0
    expected = [line.split("\t") for line in one.read_text().splitlines() if not line.startswith("#")]
    evaluated = pd.read_parquet(demo_run / "results/eval/stacked_spliceai/predictions.parquet").set_index("variant_id")
    for rec, exp in zip(records, expected, strict=True):
        info = dict(item.split("=", 1) for item in rec[7].split(";"))
        assert info["SpliceAI"] == dict(item.split("=", 1) for item in exp[7].split(";"))["SpliceAI"], rec[2]
        probability = float(info["MetaSplice"].split("|")[2])
        assert abs(probability - evaluated.loc[rec[2], "score_calibrated"]) <= 5e-5, rec[2]
