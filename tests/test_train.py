"""Training loop and experiment registry on small synthetic window/variant/target files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from metasplice.experiments.plan import train_inputs
from metasplice.experiments.registry import (
    TINY_HF_MODEL,
    experiment_for,
    experiment_from_dict,
    resolve_all,
    resolve_experiment,
)
from metasplice.models import load_checkpoint, load_model, model_config
from metasplice.models.tiny_hf import build_tiny_hf_model
from metasplice.training.train import (
    TrainConfig,
    load_training_data,
    make_optimizer,
    make_scheduler,
    predict,
    resolve_device,
    run_experiment,
    select_rows,
)

ROOT = Path(__file__).resolve().parents[1]

CONTEXT = 41
CONTEXTS = [41, 401, 501, 1001, 2001]
CNN = {"task": "delta", "context": CONTEXT, "hidden": 8, "layers": 2, "kernel_size": 5}
FAST = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "seed": 7, "device": "cpu", "log_every": 1000}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def write_dataset(root: Path, n: int = 300, context: int = CONTEXT, seed: int = 0) -> dict[str, Path]:
    """ctx npz + variants.parquet + scores.parquet with a learnable signal (GT written at the centre)."""
    rng = np.random.default_rng(seed)
    label = rng.choice(np.array([1, 0, -1], np.int8), n, p=[0.45, 0.35, 0.2])
    split = rng.choice(np.array(["train", "val", "test"]), n, p=[0.6, 0.25, 0.15])
    ref = rng.integers(0, 4, (n, context), dtype=np.uint8)
    alt = ref.copy()
    c = context // 2
    sa = label == 1
    alt[sa, c], alt[sa, c + 1] = 2, 3
    alt[~sa, c] = (ref[~sa, c] + 1) % 4
    ds = np.zeros((n, 4), np.float32)
    ds[sa, 2] = rng.uniform(0.5, 1.0, sa.sum())
    ds[label == -1] = np.nan
    ds[np.flatnonzero(sa)[:3]] = np.nan  # label 1 not scored by the base model -> NaN target
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "sequences": root / f"ctx{context}.npz",
        "variants": root / "variants.parquet",
        "scores": root / "scores.parquet",
    }
    np.savez(paths["sequences"], ref=ref, alt=alt)
    pd.DataFrame({"variant_id": [f"1:{i + 100}:A:G" for i in range(n)], "label": label, "split": split}).to_parquet(
        paths["variants"]
    )
    pd.DataFrame({f"target_{t}": ds[:, i] for i, t in enumerate(("DS_AG", "DS_AL", "DS_DG", "DS_DL"))}).to_parquet(
        paths["scores"]
    )
    return paths


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"))


def run(paths, out: Path, model_values=CNN, architecture="gated_cnn", state=True, on_epoch_end=None, **train):
    cfg = model_config(architecture, model_values)
    summary = run_experiment(
        architecture,
        cfg,
        TrainConfig(**{**FAST, **train}),
        paths["sequences"],
        paths["variants"],
        paths["scores"],
        out / "model.pt",
        out / "history.tsv",
        out / "train_state.pt" if state else None,
        on_epoch_end,
    )
    return summary, pd.read_csv(out / "history.tsv", sep="\t")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def test_select_rows_balanced_and_split(data):
    d = load_training_data(data["sequences"], data["variants"], data["scores"], "delta", ("DS_AG", "DS_DG"))
    train, val = select_rows(d, TrainConfig(seed=1))
    assert (d.split[train] == "train").all() and (d.split[val] == "val").all()
    assert (d.label[train] == 1).sum() == (d.label[train] == 0).sum() > 0
    assert np.isin(d.label[np.concatenate([train, val])], (0, 1)).all()
    assert np.isfinite(d.y[np.concatenate([train, val])]).all()
    small, _ = select_rows(d, TrainConfig(seed=1, max_samples=20))
    assert len(small) == 20 and (d.label[small] == 1).sum() == 10
    again, _ = select_rows(d, TrainConfig(seed=1, max_samples=20))
    assert np.array_equal(small, again)


def test_training_writes_model_history_and_restores_best(data, tmp_path):
    summary, history = run(data, tmp_path, epochs=5)
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_auroc", "lr_model", "seconds", "best"]
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert not (tmp_path / "train_state.pt").exists()  # removed after success
    checkpoint = load_checkpoint(tmp_path / "model.pt")
    assert checkpoint["architecture"] == "gated_cnn" and checkpoint["model_config"]["hidden"] == 8
    assert checkpoint["info"]["strand_oriented"] is True  # the windows file has no flag: strand-oriented
    assert checkpoint["train_config"]["epochs"] == 5 and checkpoint["output_names"] == [
        "DS_AG",
        "DS_AL",
        "DS_DG",
        "DS_DL",
    ]
    best = int(history["val_loss"].idxmin()) + 1
    assert summary["best_epoch"] == best == checkpoint["info"]["best_epoch"]
    # the saved weights are the best epoch's: their validation loss is the history's minimum
    model = load_model(tmp_path / "model.pt")
    d = load_training_data(data["sequences"], data["variants"], data["scores"], "delta", model.output_names)
    _, val = select_rows(d, TrainConfig(**FAST))
    p = predict(model, d.ref[val], d.alt[val], batch_size=32)
    assert p.shape == (len(val), 4) and ((p >= 0) & (p <= 1)).all()
    assert np.mean((p - d.y[val]) ** 2) == pytest.approx(history["val_loss"].min(), rel=1e-4)


def test_cpu_run_is_reproducible(data, tmp_path):
    _, first = run(data, tmp_path / "a", epochs=2)
    _, second = run(data, tmp_path / "b", epochs=2)
    cols = ["train_loss", "val_loss", "val_auroc", "lr_model"]
    pd.testing.assert_frame_equal(first[cols], second[cols], check_exact=True)
    a, b = weights(tmp_path / "a" / "model.pt"), weights(tmp_path / "b" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, other = run(data, tmp_path / "c", epochs=2, seed=8)
    assert not np.array_equal(first["train_loss"], other["train_loss"])


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(data, tmp_path):
    model = {**CNN, "dropout": 0.2}  # dropout makes the RNG state part of what must be resumed

    def kill_after_two(row):
        if row["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(data, tmp_path / "resumed", model, on_epoch_end=kill_after_two, epochs=4)
    assert (tmp_path / "resumed" / "train_state.pt").exists()
    assert len(pd.read_csv(tmp_path / "resumed" / "history.tsv", sep="\t")) == 2
    seen = []
    _, resumed = run(data, tmp_path / "resumed", model, on_epoch_end=lambda r: seen.append(r["epoch"]), epochs=4)
    assert seen == [3, 4]  # epochs 1-2 were not trained again
    _, straight = run(data, tmp_path / "straight", model, epochs=4)
    cols = ["epoch", "train_loss", "val_loss", "val_auroc", "lr_model", "best"]
    pd.testing.assert_frame_equal(resumed[cols], straight[cols], check_exact=True)
    a, b = weights(tmp_path / "resumed" / "model.pt"), weights(tmp_path / "straight" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_state_of_another_configuration_is_not_resumed(data, tmp_path):
    def stop(row):
        raise Interrupt

    with pytest.raises(Interrupt):
        run(data, tmp_path, epochs=3, on_epoch_end=stop)
    seen = []
    run(data, tmp_path, epochs=3, lr=1e-3, on_epoch_end=lambda r: seen.append(r["epoch"]))
    assert seen == [1, 2, 3]


def test_state_of_other_data_is_not_resumed(data, tmp_path):
    """Same rows and settings, but re-scored targets (or re-extracted windows): a fresh run, not a resume."""

    def stop(row):
        raise Interrupt

    with pytest.raises(Interrupt):
        run(data, tmp_path / "run", epochs=3, on_epoch_end=stop)
    rescored = tmp_path / "rescored.parquet"
    scores = pd.read_parquet(data["scores"])
    (scores * 0.5).to_parquet(rescored)
    seen = []
    run({**data, "scores": rescored}, tmp_path / "run", epochs=3, on_epoch_end=lambda r: seen.append(r["epoch"]))
    assert seen == [1, 2, 3]
    with pytest.raises(Interrupt):
        run(data, tmp_path / "windows", epochs=3, on_epoch_end=stop)
    with np.load(data["sequences"]) as npz:
        ref, alt = npz["ref"], npz["alt"]
    np.savez(tmp_path / "windows.npz", ref=ref, alt=np.where(alt == 0, 1, alt).astype(np.uint8))
    seen.clear()
    run(
        {**data, "sequences": tmp_path / "windows.npz"},
        tmp_path / "windows",
        epochs=3,
        on_epoch_end=lambda r: seen.append(r["epoch"]),
    )
    assert seen == [1, 2, 3]


def test_nan_first_epoch_is_not_kept_as_best(data, tmp_path, monkeypatch):
    """A diverged first epoch (NaN validation loss) is replaced as best by the first finite one."""
    import metasplice.training.train as T

    real, calls = T._evaluate, []

    def first_nan(*args, **kwargs):
        calls.append(1)
        loss, auroc = real(*args, **kwargs)
        return (float("nan"), auroc) if len(calls) == 1 else (loss, auroc)

    monkeypatch.setattr(T, "_evaluate", first_nan)
    summary, history = run(data, tmp_path, epochs=3, early_stopping=True, patience=1)
    assert np.isnan(history["val_loss"].iloc[0]) and history["best"].iloc[1]
    assert (
        summary["best_epoch"] >= 2 and np.isfinite(summary["best_value"]) and not history["best"].iloc[2:].all()
    ) or summary["best_epoch"] == 3


def test_without_restore_the_last_epoch_is_saved_and_reported(data, tmp_path):
    summary, history = run(data, tmp_path, epochs=3, restore_best=False)
    assert summary["best_epoch"] == 3 and not summary["restored_best"]
    assert summary["best_value"] == pytest.approx(history["val_loss"].iloc[-1])
    assert load_checkpoint(tmp_path / "model.pt")["info"]["best_epoch"] == 3


def test_early_stopping_with_patience(data, tmp_path):
    summary, history = run(data, tmp_path, epochs=10, early_stopping=True, patience=2, min_delta=10.0)
    assert len(history) == 3 and summary["early_stopped"] and summary["best_epoch"] == 1


def test_binary_training_reaches_signal(data, tmp_path):
    summary, history = run(data, tmp_path, {**CNN, "task": "binary"}, epochs=6, monitor="val_auroc")
    assert history["val_auroc"].max() > 0.9
    assert load_checkpoint(tmp_path / "model.pt")["output_names"] == ["splice_altering"]


def test_per_group_learning_rates_stay_distinct(tmp_path):
    snapshot = build_tiny_hf_model(tmp_path / "tiny", hidden=16, max_length=128)
    cfg = model_config(
        "hf_encoder", {"model_path": str(snapshot), "context": CONTEXT, "finetune_layers": 1, "encoder_lr_scale": 0.1}
    )
    from metasplice.models import build_model

    model = build_model("hf_encoder", cfg)
    config = TrainConfig(lr=1e-3, warmup_fraction=0.2)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, total_steps=20, config=config)
    seen = []
    for _ in range(12):
        optimizer.step()
        scheduler.step()
        seen.append(dict(zip([g["name"] for g in optimizer.param_groups], scheduler.get_last_lr())))
    assert [g["name"] for g in optimizer.param_groups] == ["head", "encoder"]
    for lrs in seen:
        assert lrs["encoder"] == pytest.approx(0.1 * lrs["head"])
    assert seen[2]["head"] > seen[0]["head"]  # warm-up
    assert seen[-1]["head"] < max(s["head"] for s in seen)  # cosine decay
    assert max(s["head"] for s in seen) == pytest.approx(1e-3)


def test_hf_experiment_trains_end_to_end(data, tmp_path):
    snapshot = build_tiny_hf_model(tmp_path / "tiny", hidden=16, max_length=128)
    values = {
        "model_path": str(snapshot),
        "task": "binary",
        "context": CONTEXT,
        "finetune_layers": 1,
        "head_hidden": 16,
    }
    summary, history = run(data, tmp_path / "run", values, "hf_encoder", epochs=2, max_samples=64, max_val_samples=40)
    assert {"lr_head", "lr_encoder"} <= set(history.columns)
    assert (history["lr_encoder"] < history["lr_head"]).all()
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.config.model_path == str(snapshot) and summary["n_train"] == 64


def test_data_errors_name_the_file(data, tmp_path):
    with pytest.raises(ValueError, match="windows are 41 nt but the model's context is 401"):
        load_training_data(data["sequences"], data["variants"], data["scores"], "delta", ("DS_AG",), 401)
    short = tmp_path / "short.parquet"
    pd.read_parquet(data["variants"]).iloc[:10].to_parquet(short)
    with pytest.raises(ValueError, match="has 300 rows but .*short.parquet has 10"):
        load_training_data(data["sequences"], short, data["scores"], "delta", ("DS_AG",))
    with pytest.raises(ValueError, match="missing target columns"):
        load_training_data(data["sequences"], data["variants"], data["variants"], "delta", ("DS_AG",))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_request_without_cuda_is_an_error():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"monitor": "val_f1"}, "unknown monitor 'val_f1'"),
        ({"amp": "fp8"}, "unknown amp mode"),
    ],
)
def test_bad_train_config(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values)


# --- experiments --------------------------------------------------------------------------------


def test_default_experiments_resolve_real_and_demo():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    real = resolve_all(config["experiments"], config["training"], [401, 501, 1001, 2001])
    demo = resolve_all(config["experiments"], config["training"], [401, 501, 1001, 2001], demo=True)
    predecessor = {
        "quick_test",
        "full_dataset",
        "early_stopping",
        "hyenadna_small_frozen",
        "hyenadna_medium_finetune",
        "binary_quick",
        "binary_full",
        "long_context_2k",
        "hyenadna_small_frozen_binary",
    }
    wishlist = {"effect_type", "localisation", "quantile_delta.seed-1", "quantile_delta.seed-2", "multitask"}
    sweep = {f"cnn_sweep.context-{c}.hidden-{h}" for c in (401, 1001) for h in (64, 128)}
    demo_sweep = {f"cnn_sweep.context-{c}.hidden-{h}" for c in (401, 1001) for h in (8, 16)}
    assert set(real) == predecessor | wishlist | sweep and set(demo) == predecessor | wishlist | demo_sweep
    assert {x.task for x in real.values()} == {
        "delta",
        "binary",
        "effect_type",
        "localisation",
        "quantile",
        "multitask",
    }
    assert real["cnn_sweep.context-1001.hidden-128"].context == 1001
    q = real["quick_test"]
    assert (q.train_config.max_samples, q.train_config.epochs, q.train_config.batch_size) == (1000, 40, 32)
    f = real["full_dataset"]
    assert (
        f.model_config.hidden,
        f.model_config.layers,
        f.train_config.batch_size,
        f.train_config.epochs,
        f.train_config.max_samples,
        f.train_config.early_stopping,
    ) == (128, 6, 64, 50, None, False)
    e = real["early_stopping"]
    assert (
        e.model_config.hidden,
        e.model_config.layers,
        e.train_config.batch_size,
        e.train_config.epochs,
        e.train_config.patience,
        e.train_config.early_stopping,
    ) == (256, 8, 128, 100, 7, True)
    m = real["hyenadna_medium_finetune"]
    assert m.model_config.model_path == "LongSafari/hyenadna-medium-160k-seqlen-hf"
    assert (m.model_config.finetune_layers, m.train_config.lr, m.model_config.encoder_lr_scale) == (2, 5e-5, 0.1)
    assert m.model_config.trust_remote_code
    assert real["hyenadna_small_frozen"].model_config.model_path == "LongSafari/hyenadna-small-32k-seqlen-hf"
    assert real["binary_quick"].train_config.max_samples == 5000 and real["binary_quick"].task == "binary"
    assert (real["binary_full"].model_config.hidden, real["binary_full"].model_config.layers) == (256, 8)
    lc = real["long_context_2k"]
    assert (lc.architecture, lc.context, lc.model_config.hidden, lc.model_config.layers) == ("long_cnn", 2001, 256, 10)
    hb = real["hyenadna_small_frozen_binary"]
    assert (hb.task, hb.context, hb.model_config.finetune_layers) == ("binary", 1001, 0)
    assert all(x.gpu == 1 for x in real.values()) and all(x.gpu == 0 for x in demo.values())
    for _name, x in demo.items():
        assert x.train_config.epochs <= (12 if x.task == "quantile" else 4) and x.train_config.max_val_samples <= 256
        if x.architecture == "hf_encoder":
            assert x.model_config.model_path == TINY_HF_MODEL and not x.model_config.trust_remote_code
        else:
            assert x.model_config.hidden <= 16
        assert experiment_from_dict(x.to_dict()) == x


def test_config_yaml_experiments_resolve():
    path = Path(__file__).resolve().parents[1] / "config.yaml"
    if not path.exists():
        pytest.skip("no config.yaml yet")
    config = yaml.safe_load(path.read_text())
    if "experiments" not in config:
        pytest.skip("config.yaml has no experiments section yet")
    contexts = config.get("sequences", {}).get("contexts", [401, 501, 1001, 2001])
    for demo in (False, True):
        resolve_all(config["experiments"], config.get("training"), contexts, demo)


def experiments(**spec):
    return {"exp": spec}


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"model": "resnet", "context": 401},
            "experiment 'exp': unknown model 'resnet'; known models: gated_cnn, hf_encoder, long_cnn",
        ),
        ({"context": 401}, "experiment 'exp': no 'model'"),
        (
            {"model": "gated_cnn", "context": 777},
            "context 777 is not extracted; extracted contexts \\(sequences.contexts\\): \\[401, 1001\\]",
        ),
        ({"model": "hf_encoder", "context": 1001}, "experiment 'exp': model 'hf_encoder' needs model_path"),
        ({"model": "gated_cnn", "context": 401, "hiden": 8}, "experiment 'exp': unknown keys \\['hiden'\\]"),
        ({"model": "gated_cnn", "context": 401, "epochs": 0}, "experiment 'exp': TrainConfig.epochs must be >= 1"),
        ({"model": "gated_cnn", "context": 401, "task": "multi"}, "experiment 'exp': unknown task 'multi'"),
    ],
)
def test_bad_experiments_fail_clearly(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_experiment("exp", experiments(**spec), {}, contexts=[401, 1001])


def test_unknown_experiment_and_training_key():
    with pytest.raises(ValueError, match="unknown experiment 'nope'; configured experiments: exp"):
        resolve_experiment("nope", experiments(model="gated_cnn"), {})
    with pytest.raises(ValueError, match="config 'training': unknown keys \\['epoch'\\]"):
        resolve_experiment("exp", experiments(model="gated_cnn"), {"epoch": 3})


def test_precedence_training_experiment_demo():
    spec = experiments(model="gated_cnn", context=401, epochs=30, demo={"epochs": 2, "hidden": 8})
    training = {"epochs": 10, "lr": 5e-4, "gpu": 1, "demo": {"gpu": 0, "lr": 1e-2}}
    real = resolve_experiment("exp", spec, training, [401])
    demo = resolve_experiment("exp", spec, training, [401], demo=True)
    assert (real.train_config.epochs, real.train_config.lr, real.gpu, real.model_config.hidden) == (30, 5e-4, 1, 128)
    assert (demo.train_config.epochs, demo.train_config.lr, demo.gpu, demo.model_config.hidden) == (2, 1e-2, 0, 8)
    assert dataclasses.asdict(real.train_config)["device"] == "auto"


def test_train_inputs_from_pipeline_config():
    config = {
        **yaml.safe_load((ROOT / "config.yaml").read_text()),
        "dataset": "splicevardb_grch38",
        "sequences": {"contexts": [401, 501, 1001, 2001]},
    }
    assert train_inputs(experiment_for("long_context_2k", config)) == {
        "sequences": "results/sequences/ctx2001.npz",
        "variants": "results/variants/variants.parquet",
        "scores": "results/targets/spliceai/scores.parquet",
    }
    assert "scores" not in train_inputs(experiment_for("binary_quick", config))
    assert "hf_model" not in train_inputs(experiment_for("hyenadna_small_frozen", config))  # hub id
    demo = train_inputs(experiment_for("hyenadna_small_frozen_binary", {**config, "dataset": "demo"}))
    assert demo == {
        "sequences": "results/sequences/ctx401.npz",
        "variants": "results/variants/variants.parquet",
        "hf_model": TINY_HF_MODEL,
    }
