"""Effect tasks: labels from base-model scores, the effect_type / localisation / quantile / multitask
heads, their training, checkpoints, predictions tables and metrics, on constructed inputs and tiny
synthetic windows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score

import metasplice.evaluation.tasks as ET
from metasplice.data.genome import Genome, encode
from metasplice.evaluation import evaluate as E
from metasplice.evaluation import metrics as M
from metasplice.models import build_model, load_checkpoint, load_model, model_config, save_model
from metasplice.models import tasks as FX
from metasplice.models.common import monotone_quantiles, task_config_dict, transform_outputs
from metasplice.models.tiny_hf import build_tiny_hf_model
from metasplice.sequences import extract_windows
from metasplice.training.train import (
    TrainConfig,
    TrainingData,
    _fingerprint,
    load_training_data,
    loss_function,
    predict,
    run_experiment,
    select_rows,
)

CONTEXT = 41
DISTANCE = 5
CNN = {"context": CONTEXT, "hidden": 8, "layers": 2, "kernel_size": 5, "distance": DISTANCE, "dropout": 0.0}
FAST = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "seed": 7, "device": "cpu", "log_every": 1000}
BOOT = M.BootstrapConfig(n=100, seed=1)
NEW_TASKS = ("effect_type", "localisation", "quantile", "multitask")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def cls(name: str) -> int:
    return FX.EFFECT_CLASSES.index(name)


# --------------------------------------------------------------------------------------------- labels


def test_effect_labels_of_known_variants():
    ds = np.array(
        [
            [0.01, 0.02, 0.00, 0.80],  # donor loss
            [0.70, 0.00, 0.10, 0.00],  # acceptor gain
            [0.00, 0.65, 0.00, 0.05],  # acceptor loss
            [0.00, 0.00, 0.90, 0.10],  # donor gain
            [0.50, 0.00, 0.00, 0.60],  # complex: 0.5 >= 0.5 x 0.6
            [0.30, 0.00, 0.00, 0.60],  # exactly half: complex (ties with the fraction count)
            [0.00, 0.00, 0.00, 0.00],  # Splice-altering, nothing scored above 0: no class
            [np.nan] * 4,  # Splice-altering, not scored: no class
            [np.nan] * 4,  # Normal, not scored: no class either (unscoreable must not mean normal)
            [0.20, 0.90, 0.00, 0.00],  # Normal with a high score: normal (the label decides)
            [0.00, 0.90, 0.00, 0.00],  # other label: no class
        ]
    )
    label = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, -1])
    got = FX.effect_labels(ds, label)
    expected = [
        "donor_loss",
        "acceptor_gain",
        "acceptor_loss",
        "donor_gain",
        "complex",
        "complex",
        None,
        None,
        None,
        "normal",
        None,
    ]
    assert got.tolist() == [cls(e) if e else -1 for e in expected]
    # a stricter complex rule and a minimum score
    assert FX.effect_labels(ds[4:5], label[4:5], complex_fraction=0.9).tolist() == [cls("donor_loss")]
    assert FX.effect_labels(ds[:2], label[:2], min_score=0.75).tolist() == [cls("donor_loss"), -1]
    with pytest.raises(ValueError, match="complex_fraction must be in"):
        FX.effect_labels(ds, label, complex_fraction=0.0)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        FX.effect_labels(ds[:, :3], label)


def test_localisation_target_is_the_dp_of_the_dominant_delta():
    ds = np.array(
        [
            [0.1, 0.0, 0.9, 0.2],
            [0.1, 0.0, 0.9, 0.2],
            [0.8, 0.0, 0.1, 0.0],
            [0.8, 0.0, 0.0, 0.0],
            [0.8, 0.0, 0.0, 0.0],
            [0.0, 0.9, 0.0, 0.0],
        ]
    )
    dp = np.array([[-30, 0, 7, 2], [-30, 0, 7, 2], [3, 0, -2, 0], [12, 0, 0, 0], [1, 0, 0, 0], [0, -4, 0, 0]])
    label = np.array([1, 1, 1, 1, 0, 1])
    strand = np.array(["+", "-", "-", "+", "+", "+"])
    d = 10
    oriented = FX.localisation_targets(ds, dp, label, strand, strand_oriented=True, distance=d)
    # DP_DG=7 dominates (not DP_AG=-30); negated on the minus strand; 12 is beyond distance; Normal: none
    assert (oriented - d).tolist() == [7, -7, -3, -1 - d, -1 - d, -4]
    assert oriented.tolist()[3:5] == [-1, -1]
    genome_orientation = FX.localisation_targets(ds, dp, label, strand, strand_oriented=False, distance=d)
    assert (genome_orientation[:3] - d).tolist() == [7, 7, 3]
    with pytest.raises(ValueError, match="strand"):
        FX.localisation_targets(ds, dp, label, None, strand_oriented=True, distance=d)


def test_offsets_point_at_the_same_base_in_strand_oriented_windows(tiny_reference):
    """Genome offset d of a minus-strand variant sits at window index c - d after reverse complement."""
    genome = Genome(tiny_reference["fasta"])
    seqs = tiny_reference["seqs"]
    context, distance = 41, 20
    c = context // 2
    rows = [("chr1", 5000, "+", 7), ("chr1", 5100, "+", -12), ("chr21", 6000, "-", 7), ("chr21", 6100, "-", -12)]
    variants = pd.DataFrame(
        {
            "chrom": [r[0] for r in rows],
            "pos": [r[1] for r in rows],
            "strand": [r[2] for r in rows],
            "ref": [seqs[r[0]][r[1] - 1] for r in rows],
        }
    )
    variants["alt"] = ["A" if b != "A" else "C" for b in variants["ref"]]
    ref, _ = extract_windows(variants, genome, context, strand_oriented=True)
    ds = np.tile([[0.0, 0.0, 0.9, 0.0]], (len(rows), 1))
    dp = np.zeros((len(rows), 4))
    dp[:, 2] = [r[3] for r in rows]
    target = FX.localisation_targets(ds, dp, np.ones(len(rows)), variants["strand"].to_numpy(), True, distance)
    complement = {"A": "T", "C": "G", "G": "C", "T": "A"}
    for i, (chrom, pos, strand, d) in enumerate(rows):
        base = seqs[chrom][pos - 1 + d]  # the base the base model points at (genome coordinates)
        if strand == "-":
            base = complement[base]
        assert ref[i, c + target[i] - distance] == encode(base)[0]


def test_class_weights_and_loss_weights():
    classes = np.array([0, 0, 0, 0, 1, 1, 5, -1])
    w = FX.effect_class_weights(classes, "balanced")
    np.testing.assert_allclose(w, [7 / 12, 7 / 6, 1, 1, 1, 7 / 3], rtol=1e-6)
    assert (FX.effect_class_weights(classes, "none") == 1).all()
    assert FX.check_loss_weights({"localisation": 0.5}) == {
        "binary": 1.0,
        "effect_type": 1.0,
        "delta": 1.0,
        "localisation": 0.5,
    }
    with pytest.raises(ValueError, match="unknown loss_weights keys"):
        FX.check_loss_weights({"regression": 1.0})


# --------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "values, message",
    [
        ({"task": "localisation", "context": 41, "distance": 21}, "distance 21 must be <= context // 2 = 20"),
        ({"task": "multitask", "context": 41, "distance": 30}, "distance 30 must be <= context // 2"),
        ({"task": "quantile", "quantiles": [0.9, 0.1]}, "strictly increasing"),
        ({"task": "quantile", "quantiles": [0.5]}, "at least two"),
        ({"task": "quantile", "quantiles": [0.0, 0.5]}, "must lie in \\(0, 1\\)"),
        ({"task": "effect_type", "class_weighting": "inverse"}, "unknown class_weighting 'inverse'"),
        ({"task": "effect_type", "complex_fraction": 1.5}, "complex_fraction must be in"),
        ({"task": "multitask", "context": 101, "loss_weights": {"delta": -1}}, "loss_weights.delta must be"),
    ],
)
def test_bad_task_options(values, message):
    with pytest.raises(ValueError, match=message):
        model_config("gated_cnn", values)


def test_task_options_are_config_fields_and_ignored_by_other_tasks():
    cfg = model_config("long_cnn", {"task": "multitask", "loss_weights": {"delta": 2.0}, "quantiles": [0.05, 0.95]})
    assert cfg.loss_weights == {"delta": 2.0} and cfg.quantiles == (0.05, 0.95)
    # distance only has to fit the window of the tasks that use it
    delta = model_config("gated_cnn", {"context": 41})
    assert delta.distance == 50
    old = {
        k: v
        for k, v in dataclasses.asdict(delta).items()
        if k not in ("complex_fraction", "min_effect_score", "class_weighting", "distance", "quantiles", "loss_weights")
    }
    assert task_config_dict(delta) == old  # what fingerprints a delta run is unchanged
    assert set(task_config_dict(model_config("gated_cnn", {"task": "quantile"}))) == set(old) | {"quantiles"}


def test_hf_encoder_pooled_heads_only(tmp_path):
    snapshot = build_tiny_hf_model(tmp_path / "tiny", hidden=16, max_length=64)
    for task, width in (("effect_type", 6), ("quantile", 8)):
        values = {
            "model_path": str(snapshot),
            "task": task,
            "context": CONTEXT,
            "head_hidden": 16,
            "quantiles": [0.25, 0.75],
        }
        model = build_model("hf_encoder", model_config("hf_encoder", values)).eval()
        tokens = torch.randint(0, 4, (2, CONTEXT), dtype=torch.uint8)
        assert predict(model, tokens, tokens).shape == (2, width) == (2, len(model.output_names))
    for task in ("localisation", "multitask"):
        with pytest.raises(ValueError, match=f"task '{task}' is not supported by model 'hf_encoder'"):
            model_config("hf_encoder", {"model_path": str(snapshot), "task": task})


# --------------------------------------------------------------------------------------------- heads


def test_outputs_and_transforms():
    torch.manual_seed(0)
    tokens = torch.randint(0, 4, (5, CONTEXT), dtype=torch.uint8)
    widths = {"effect_type": 6, "localisation": 2 * DISTANCE + 1, "quantile": 12, "multitask": 1 + 6 + 4 + 11}
    for task in NEW_TASKS:
        model = build_model("gated_cnn", model_config("gated_cnn", {**CNN, "task": task})).eval()
        p = predict(model, tokens.numpy(), tokens.numpy())
        assert p.shape == (5, widths[task]) == (5, len(model.output_names))
        slices = FX.head_slices(task, model.output_names)
        for head in ("effect_type", "localisation"):
            if head in slices:
                np.testing.assert_allclose(p[:, slices[head]].sum(axis=1), 1.0, rtol=1e-5)
    model = build_model("gated_cnn", model_config("gated_cnn", {**CNN, "task": "localisation"}))
    assert model.output_names[0] == "offset_-5" and model.output_names[-1] == "offset_5"
    # quantiles never cross, whatever the raw values
    raw = torch.randn(50, 4 * 3) * 5
    q = monotone_quantiles(raw, 3).reshape(50, 4, 3)
    assert (q[..., 1:] >= q[..., :-1]).all() and ((q >= 0) & (q <= 1)).all()
    cfg = model_config("gated_cnn", {**CNN, "task": "quantile"})
    assert cfg.quantiles == (0.1, 0.5, 0.9)
    assert FX.quantile_names(("DS_AG",), cfg.quantiles) == ("DS_AG_q0.1", "DS_AG_q0.5", "DS_AG_q0.9")
    torch.testing.assert_close(transform_outputs(cfg, raw), monotone_quantiles(raw, 3))


def test_losses_on_hand_values():
    cfg = model_config("gated_cnn", {**CNN, "task": "quantile", "targets": ["DS_AG"], "quantiles": [0.2, 0.8]})
    raw = torch.tensor([[0.0, -50.0]])  # both quantiles = sigmoid(0) = 0.5 (softplus(-50) ~ 0)
    y = torch.tensor([[1.0]])
    # pinball: q * (y - p) for y above both: (0.2 * 0.5 + 0.8 * 0.5) / 2
    assert loss_function("quantile", model_config=cfg)(raw, y).item() == pytest.approx(0.25, abs=1e-6)
    mt = model_config(
        "gated_cnn", {**CNN, "task": "multitask", "loss_weights": {"binary": 0, "effect_type": 0, "delta": 0}}
    )
    loss = loss_function("multitask", model_config=mt)
    out = torch.zeros(2, 1 + 6 + 4 + 11, requires_grad=True)
    nan = float("nan")
    y = torch.tensor([[1.0, 1.0, 3.0, 0.5, 0.5, 0.5, 0.5], [0.0, 0.0, nan, 0.0, 0.0, 0.0, 0.0]])
    value = loss(out, y)  # localisation only, on the first row: uniform over 11 offsets
    assert value.item() == pytest.approx(np.log(11), rel=1e-6)
    value.backward()
    assert out.grad[1].abs().sum() == 0 and out.grad[0].abs().sum() > 0
    y_none = y.clone()
    y_none[:, 2] = nan
    assert loss(out, y_none).item() == 0.0  # no row with an offset in the batch: the head adds 0


# --------------------------------------------------------------------------------------------- training


def write_dataset(root: Path, n: int = 240, seed: int = 0) -> dict[str, Path]:
    """Windows, variants (with strand) and base-model scores with DS/DP and targets; the effect class is
    written at the centre and a marker at the oriented offset of the dominant delta."""
    rng = np.random.default_rng(seed)
    label = rng.choice(np.array([1, 0, -1], np.int8), n, p=[0.5, 0.35, 0.15])
    split = rng.choice(np.array(["train", "val", "test"]), n, p=[0.6, 0.25, 0.15])
    strand = rng.choice(np.array(["+", "-"]), n)
    ref = rng.integers(0, 4, (n, CONTEXT), dtype=np.uint8)
    alt = ref.copy()
    c = CONTEXT // 2
    sa = label == 1
    dominant = rng.integers(0, 4, n)
    ds = rng.uniform(0, 0.05, (n, 4)).astype(np.float32)
    ds[sa, dominant[sa]] = rng.uniform(0.5, 1.0, sa.sum())
    dp = rng.integers(-DISTANCE, DISTANCE + 1, (n, 4))
    alt[:, c] = np.where(sa, dominant, 4)
    offset = dp[np.arange(n), dominant] * np.where(strand == "-", -1, 1)
    alt[np.flatnonzero(sa), c + offset[sa]] = 2
    ds[label == -1] = np.nan
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "sequences": root / f"ctx{CONTEXT}.npz",
        "variants": root / "variants.parquet",
        "scores": root / "scores.parquet",
    }
    np.savez(paths["sequences"], ref=ref, alt=alt, context=np.int64(CONTEXT), strand_oriented=np.bool_(True))
    region = rng.choice(list(E.REGIONS), n)
    pd.DataFrame(
        {
            "variant_id": [f"1:{i + 100}:A:G" for i in range(n)],
            "split": split,
            "label": label,
            "classification": np.where(sa, "Splice-altering", np.where(label == 0, "Normal", "Other")),
            "region": region,
            "variant_type": "snv",
            "strand": strand,
        }
    ).to_parquet(paths["variants"])
    scores = pd.DataFrame({k: ds[:, i] for i, k in enumerate(FX.DS_COLUMNS)})
    for i, k in enumerate(FX.DP_COLUMNS):
        scores[k] = pd.array(np.where(np.isfinite(ds[:, i]), dp[:, i], 0), dtype="Int64")
        scores.loc[~np.isfinite(ds[:, i]), k] = pd.NA
    for i, k in enumerate(FX.DS_COLUMNS):
        scores[f"target_{k}"] = np.where(sa, ds[:, i], np.where(label == 0, 0.0, np.nan)).astype(np.float32)
    scores.to_parquet(paths["scores"])
    return paths


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("effects"))


def train(paths, out: Path, values: dict, **train_values):
    cfg = model_config("gated_cnn", values)
    summary = run_experiment(
        "gated_cnn",
        cfg,
        TrainConfig(**{**FAST, **train_values}),
        paths["sequences"],
        paths["variants"],
        paths["scores"],
        out / "model.pt",
        out / "history.tsv",
    )
    return summary, pd.read_csv(out / "history.tsv", sep="\t")


def test_training_rows_and_targets_per_task(data):
    variants = pd.read_parquet(data["variants"])
    scores = pd.read_parquet(data["scores"])
    label = variants["label"].to_numpy()
    opts = model_config("gated_cnn", {**CNN, "task": "multitask"})
    d = load_training_data(
        data["sequences"], data["variants"], data["scores"], "multitask", opts.targets, CONTEXT, opts
    )
    classes = FX.config_effect_labels(scores, label, opts)
    offsets = FX.config_localisation_targets(scores, label, variants["strand"].to_numpy(), True, opts)
    np.testing.assert_array_equal(np.nan_to_num(d.y[:, 1], nan=-1), classes)
    np.testing.assert_array_equal(np.nan_to_num(d.y[:, 2], nan=-1), offsets)
    train_rows, val_rows = select_rows(d, TrainConfig(seed=1))
    assert (label[train_rows] == 1).sum() == (label[train_rows] == 0).sum()  # balanced like binary
    assert np.isnan(d.y[train_rows[label[train_rows] == 0], 2]).all()  # Normal rows: no offset
    loc = load_training_data(data["sequences"], data["variants"], data["scores"], "localisation", (), CONTEXT, opts)
    train_rows, val_rows = select_rows(loc, TrainConfig(seed=1))
    assert (label[train_rows] == 1).all() and (label[val_rows] == 1).all()  # Splice-altering rows only
    assert len(train_rows) == int(((offsets >= 0) & (variants["split"] == "train").to_numpy()).sum())
    capped, _ = select_rows(loc, TrainConfig(seed=1, max_samples=10))
    assert len(capped) == 10
    eff = load_training_data(data["sequences"], data["variants"], data["scores"], "effect_type", (), CONTEXT, opts)
    train_rows, _ = select_rows(eff, TrainConfig(seed=1))
    assert (eff.y[train_rows, 0] >= 0).all() and (label[train_rows] == 1).sum() == (label[train_rows] == 0).sum()
    with pytest.raises(ValueError, match="needs the base model's scores file"):
        load_training_data(data["sequences"], data["variants"], None, "effect_type")


@pytest.mark.parametrize("task", NEW_TASKS)
def test_new_task_trains_and_round_trips(task, data, tmp_path):
    values = {**CNN, "task": task, "class_weighting": "balanced"}
    summary, history = train(data, tmp_path, values)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0], history
    assert np.isfinite(history["val_loss"]).all()
    if task == "localisation":
        assert history["val_auroc"].isna().all()
    else:
        assert np.isfinite(history["val_auroc"]).all()
    checkpoint = load_checkpoint(tmp_path / "model.pt")
    model = load_model(tmp_path / "model.pt")
    assert checkpoint["model_config"]["task"] == task and list(model.output_names) == checkpoint["output_names"]
    assert ("class_weights" in summary) == (task in ("effect_type", "multitask"))
    rebuilt = build_model("gated_cnn", model_config("gated_cnn", values))
    rebuilt.load_state_dict(checkpoint["state_dict"])
    tokens = np.load(data["sequences"])
    ref, alt = tokens["ref"][:20], tokens["alt"][:20]
    np.testing.assert_array_equal(predict(model, ref, alt), predict(rebuilt.eval(), ref, alt))


def test_localisation_cannot_monitor_auroc(data, tmp_path):
    with pytest.raises(ValueError, match="no classifier score to monitor"):
        train(data, tmp_path, {**CNN, "task": "localisation"}, monitor="val_auroc")


def test_delta_fingerprint_and_old_checkpoints_unchanged(tmp_path):
    cfg = model_config("gated_cnn", {"context": CONTEXT, "hidden": 8, "layers": 1})
    idx = np.arange(4)
    old_payload = {k: v for k, v in dataclasses.asdict(cfg).items() if k in task_config_dict(cfg)}
    tokens = np.zeros((4, CONTEXT), np.uint8)
    data = TrainingData(tokens, tokens, np.zeros((4, 4), np.float32), np.zeros(4, np.int8), np.full(4, "train"))
    assert _fingerprint("gated_cnn", cfg, TrainConfig(), idx, idx, data) == _fingerprint(
        "gated_cnn", dataclasses.replace(cfg, distance=7, quantiles=(0.2, 0.8)), TrainConfig(), idx, idx, data
    )
    assert set(old_payload) == set(task_config_dict(cfg))
    model = build_model("gated_cnn", cfg)
    save_model(tmp_path / "model.pt", model)
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    for key in ("complex_fraction", "min_effect_score", "class_weighting", "distance", "quantiles", "loss_weights"):
        del checkpoint["model_config"][key]  # as written before the effect tasks existed
    torch.save(checkpoint, tmp_path / "old.pt")
    tokens = torch.randint(0, 4, (3, CONTEXT), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "old.pt")(tokens, tokens), model.eval()(tokens, tokens))


# --------------------------------------------------------------------------------------------- metrics


def test_macro_f1_of_a_known_confusion_matrix():
    C = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    # F1: class 0 2*5/(2*5+1+2)=10/13, class 1 6/(6+1+3)=0.6, class 2 8/(8+1+0)=8/9
    scores = M.class_scores(C)
    np.testing.assert_allclose(scores["f1"], [10 / 13, 0.6, 8 / 9])
    np.testing.assert_allclose(scores["precision"], [5 / 7, 3 / 4, 4 / 5])
    np.testing.assert_allclose(scores["recall"], [5 / 6, 3 / 6, 4 / 4])
    assert scores["macro_f1"] == pytest.approx((10 / 13 + 0.6 + 8 / 9) / 3)
    # the same from rows, checked against scikit-learn (a 4th class that never occurs is left out)
    t = np.repeat([0, 0, 1, 1, 1, 2], [5, 1, 2, 3, 1, 4])
    p = np.repeat([0, 1, 0, 1, 2, 2], [5, 1, 2, 3, 1, 4])
    np.testing.assert_array_equal(M.multiclass_confusion(t, p, 4)[:3, :3], C)
    assert M.macro_f1(t, p, 4) == pytest.approx(f1_score(t, p, average="macro"))
    res = M.multiclass_metrics_ci(t, p, 4, BOOT)
    assert res["macro_f1"].estimate == pytest.approx(scores["macro_f1"])
    assert res["macro_f1"].low <= res["macro_f1"].estimate <= res["macro_f1"].high
    np.testing.assert_allclose([iv.estimate for iv in res["precision"][:3]], precision_score(t, p, average=None))
    np.testing.assert_allclose([iv.estimate for iv in res["recall"][:3]], recall_score(t, p, average=None))
    assert np.isnan(res["recall"][3].estimate) and res["support"] == [6, 6, 4, 0]
    assert res["confusion_rate"][1][0].estimate == pytest.approx(2 / 6)
    # every resample is a real resample: its macro-F1 equals scikit-learn's on the drawn rows
    W = M.bootstrap_counts(len(t), 5, 3)
    reps = M.class_scores(M.weighted_confusion(t, p, 4, W))["macro_f1"]
    for b in range(5):
        idx = np.repeat(np.arange(len(t)), W[b])
        assert reps[b] == pytest.approx(f1_score(t[idx], p[idx], average="macro"))


def test_coverage_and_localisation_hits_on_known_examples():
    y = np.array([[0.1, 0.5], [0.3, 0.9], [0.0, 0.2], [0.6, 0.4]])
    low = np.full_like(y, 0.1)
    high = np.full_like(y, 0.5)
    inside = M.interval_coverage(y, low, high)
    assert inside.tolist() == [[True, True], [True, False], [False, True], [False, True]]
    res = M.coverage_ci(inside, BOOT)
    assert res["overall"].estimate == pytest.approx(5 / 8)
    assert [iv.estimate for iv in res["per_target"]] == [0.5, 0.75]
    assert M.interval_coverage(y, low, high, tolerance=0.1).sum() == 7  # 0.0 is within 0.1 of 0.1
    target = np.array([0, 3, -2, 4])
    ranked = np.array([[0, 1, 2], [1, 3, 0], [2, -2, 0], [-3, 0, 1]])
    hits = M.localisation_hits(target, ranked, (2, 5))
    assert hits["top1"].tolist() == [1, 0, 0, 0] and hits["top3"].tolist() == [1, 1, 1, 0]
    assert hits["within_2"].tolist() == [1, 1, 0, 0] and hits["within_5"].tolist() == [1, 1, 1, 0]
    ci = M.localisation_metrics_ci(target, ranked, (2, 5), BOOT)
    assert ci["top3"].estimate == 0.75 and ci["top3"].low <= 0.75 <= ci["top3"].high


# --------------------------------------------------------------------------------------------- evaluation


def test_predictions_tables_and_task_metrics(data):
    variants = pd.read_parquet(data["variants"])
    scores = pd.read_parquet(data["scores"])
    rows = np.flatnonzero(variants["split"].isin(["val", "test"]))
    label = variants["label"].to_numpy()
    classes = FX.effect_labels(scores[list(FX.DS_COLUMNS)].to_numpy(), label)
    # a perfect effect-type model: its predicted class is the target wherever there is one
    probs = np.full((len(rows), 6), 0.02)
    probs[np.arange(len(rows)), np.clip(classes[rows], 0, None)] = 0.9
    pred = E.model_predictions(variants, probs, rows, FX.EFFECT_CLASSES, "effect_type", scores)
    assert {"prob_normal", "prob_complex", "predicted_class", "target_class"} <= set(pred.columns)
    np.testing.assert_allclose(pred["score"], 1 - probs[:, 0])
    metrics = E.task_metrics(pred, "effect_type", E.EvalConfig(bootstrap=BOOT))["effect_type"]
    assert metrics["macro_f1"]["estimate"] == pytest.approx(1.0)
    assert metrics["n"] == int(((pred["split"] == "test") & pred["target_class"].notna()).sum())
    assert np.trace(np.array(metrics["confusion_matrix"]["counts"])) == metrics["n"]
    # quantile: a known interval covers the targets within it
    names = FX.quantile_names(FX.DS_COLUMNS, (0.1, 0.5, 0.9))
    q = np.tile(np.array([0.0, 0.5, 0.7]), (len(rows), 4))
    pred = E.model_predictions(variants, q, rows, names, "quantile", scores)
    assert {"pred_DS_AG", "pred_DS_AG_q0.1", "pred_DS_AG_q0.9", "target_DS_AG"} <= set(pred.columns)
    np.testing.assert_allclose(pred["score"], 0.5)
    res = ET.quantile_metrics(E.labelled_rows(pred, "test"), E.EvalConfig(bootstrap=BOOT))
    test = E.labelled_rows(pred, "test")
    t = test[[f"target_{c}" for c in FX.DS_COLUMNS]].to_numpy()
    t = t[np.isfinite(t).all(axis=1)]
    assert res["nominal"] == pytest.approx(0.8) and res["n"] == len(t)
    assert res["coverage"]["estimate"] == pytest.approx(np.mean(t <= 0.7 + ET.COVERAGE_TOLERANCE))
    assert res["by_label"]["normal"]["estimate"] == 1.0  # zero targets inside [0, 0.7]
    # localisation: the top offsets and the oriented target
    offsets = FX.config_localisation_targets(scores, label, variants["strand"].to_numpy(), True, {"distance": DISTANCE})
    loc = np.full((len(rows), 2 * DISTANCE + 1), 0.01)
    loc[np.arange(len(rows)), np.clip(offsets[rows], 0, None)] = 0.5
    pred = E.model_predictions(
        variants, loc, rows, FX.offset_names(DISTANCE), "localisation", scores, {"distance": DISTANCE}
    )
    assert pred["score"].isna().all()
    has = pred["loc_target"].notna()
    np.testing.assert_array_equal(pred.loc[has, "loc_top1"], pred.loc[has, "loc_target"])
    res = E.task_metrics(pred, "localisation", E.EvalConfig(bootstrap=BOOT))["localisation"]
    assert res["top1"]["estimate"] == 1.0 and res["within_2"]["estimate"] == 1.0


@pytest.mark.parametrize("task", ["multitask", "localisation", "quantile"])
def test_experiment_files_with_an_effect_model(task, data, tmp_path):
    torch.manual_seed(0)
    model = build_model("gated_cnn", model_config("gated_cnn", {**CNN, "task": task}))
    save_model(tmp_path / "model.pt", model, info={"best_epoch": 1})
    cfg = E.EvalConfig(bootstrap=M.BootstrapConfig(n=50), device="cpu", batch_size=64)
    res = E.evaluate_experiment_files(
        tmp_path / "model.pt",
        data["variants"],
        data["sequences"],
        data["scores"],
        tmp_path / "p.parquet",
        tmp_path / "m.json",
        "fx",
        cfg,
    )
    on_disk = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    pred = pd.read_parquet(tmp_path / "p.parquet")
    assert on_disk["task"] == task
    if task == "multitask":
        assert {"effect_type", "localisation", "metrics", "correlation"} <= set(on_disk)
        assert on_disk["correlation"] is not None  # the delta head against the validated targets
        assert {"predicted_class", "target_class", "loc_top1", "loc_target", "pred_DS_AG"} <= set(pred.columns)
    elif task == "localisation":
        assert "metrics" not in on_disk and "threshold" not in on_disk
        assert set(on_disk["localisation"]) >= {"n", "top1", "top3", "within_2", "within_5"}
    else:
        assert on_disk["quantile"]["interval"] == [0.1, 0.9] and "per_target" in on_disk["quantile"]
    assert res["score"] == E.EFFECT_TASK_SCORES[task]
