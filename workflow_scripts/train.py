"""Train one experiment (rule train): params.experiment -> output.model, output.history; log to log[0]."""

import logging

import torch

from metasplice.experiments.plan import resolve_instance
from metasplice.training.train import run_experiment


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0],
        filemode="w",
        level=logging.INFO,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
    log = logging.getLogger("train")
    torch.set_num_threads(max(1, int(smk.threads)))
    # params.experiment only triggers reruns; the full experiment (with its runtime settings:
    # device, threads, GPUs) is resolved from the config, which gives the same values
    experiment = resolve_instance(smk.config, smk.wildcards.experiment)
    log.info("experiment %s: %s", experiment.name, experiment.to_dict())
    try:
        run_experiment(
            experiment.architecture,
            experiment.model_config,
            experiment.train_config,
            sequences=smk.input.sequences,
            variants=smk.input.variants,
            scores=getattr(smk.input, "scores", None),
            model_out=smk.output.model,
            history_out=smk.output.history,
            state_path=smk.params.state,
        )
    except Exception:
        log.exception("training %s failed", experiment.name)
        raise


main(snakemake)  # noqa: F821 - injected by Snakemake
