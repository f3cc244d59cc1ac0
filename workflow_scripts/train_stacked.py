"""train_stacked: base-model scores + annotation + members' out-of-fold scores -> a stacked model directory."""

from pathlib import Path

from metasplice.experiments.stacking import StackConfig, train_stacked_files
from metasplice.workflow import run_logged


def main(sm) -> None:
    p = sm.params.stacked
    config = StackConfig.from_spec(p["stack"]["name"], {k: v for k, v in p["stack"].items() if k != "name"})
    inp = sm.input
    oof_folds = sorted({int(k.split("__")[2]) for k in inp.keys() if k.startswith("oof_predictions__")})  # noqa: SIM118 (a Namedlist iterates its values)
    Path(sm.output.members).mkdir(parents=True, exist_ok=True)
    train_stacked_files(
        config,
        variants_path=inp.variants,
        base_scores={b: inp[f"scores__{b}"] for b in config.bases},
        base_deltas={b: inp[f"deltas__{b}"] for b in config.bases},
        member_predictions={m: inp[f"predictions__{m}"] for m in config.members},
        member_oof={
            m: [(inp[f"oof_predictions__{m}__{j}"], inp[f"oof_variants__{m}__{j}"]) for j in oof_folds]
            for m in config.members
        },
        member_models={m: inp[f"model__{m}"] for m in config.members},
        out_dir=Path(sm.output.stacker).parent,
        base_models=p["base_models"],
        strand_oriented=p["strand_oriented"],
        regions=p["regions"],
        threads=sm.threads,
    )


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
