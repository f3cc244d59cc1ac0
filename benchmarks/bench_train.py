"""Training throughput (samples/s) of every default experiment's model, on CPU and on CUDA when present.

Each experiment of the default list (config.yaml, real sizes) is built
and trained for a few steps on random windows with the real training step (AdamW, warm-up + cosine,
clipping, autocast on CUDA); the timed steps follow warm-up steps. Hugging Face entries use the local
snapshot given by ``--hf-model HUB_ID=PATH`` for their hub id (with ``--trust-remote-code`` for
HyenaDNA's own code) or else the tiny offline stand-in (its numbers say nothing about HyenaDNA). With CUDA, the time of the whole default list at
the real dataset's scale (``--train-rows`` balanced rows, ``--val-rows`` validation rows, every epoch
run, no early stop) is projected from the measured rates.

    python benchmarks/bench_train.py                     # CPU (small batches), then CUDA if available
    python benchmarks/bench_train.py --device cuda --trust-remote-code \
        --hf-model LongSafari/hyenadna-small-32k-seqlen-hf=/snapshots/hyenadna-small-32k-seqlen-hf \
        --hf-model LongSafari/hyenadna-medium-160k-seqlen-hf=/snapshots/hyenadna-medium-160k-seqlen-hf
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
import yaml

from metasplice.experiments.registry import resolve_all
from metasplice.models import build_model
from metasplice.models.tiny_hf import build_tiny_hf_model
from metasplice.training.train import (
    amp_dtype,
    configure_backends,
    loss_function,
    make_optimizer,
    make_scheduler,
    train_step,
)


def synthetic_targets(experiment, n_out: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """Random targets in the layout the experiment's loss reads (class indices as floats)."""
    task, cfg = experiment.task, experiment.model_config

    def classes(n: int) -> torch.Tensor:
        return torch.randint(0, n, (batch_size, 1), device=device).float()

    if task == "binary":
        return classes(2)
    if task == "effect_type":
        return classes(6)
    if task == "localisation":
        return classes(n_out)
    if task == "multitask":
        return torch.cat(
            [
                classes(2),
                classes(6),
                classes(2 * cfg.distance + 1),
                torch.rand(batch_size, len(cfg.targets), device=device),
            ],
            dim=1,
        )
    if task == "quantile":
        return torch.rand(batch_size, len(cfg.targets), device=device)
    return torch.rand(batch_size, n_out, device=device)


def measure(
    experiment, device: torch.device, batch_size: int, steps: int, warmup: int, amp: str, compile_model: bool
) -> float:
    """Training samples/s of one experiment's model."""
    torch.manual_seed(0)
    configure_backends(device)
    model = build_model(experiment.architecture, experiment.model_config).to(device).train()
    step_model = torch.compile(model) if compile_model else model
    config = dataclasses.replace(experiment.train_config, batch_size=batch_size)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, 10_000, config)
    dtype = amp_dtype(device, amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    criterion = loss_function(experiment.task, config.delta_loss, experiment.model_config)
    ref = torch.randint(0, 5, (batch_size, experiment.context), dtype=torch.uint8, device=device)
    alt = ref.clone()
    alt[:, experiment.context // 2] = (alt[:, experiment.context // 2] + 1) % 4
    y = synthetic_targets(experiment, len(model.output_names), batch_size, device)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss = train_step(step_model, optimizer, scheduler, scaler, criterion, ref, alt, y, dtype, config.grad_clip)
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def projected_hours(experiment, rate: float, train_rows: int, val_rows: int) -> float:
    """Hours for every epoch of one experiment at ``rate`` training samples/s (evaluation at 3x)."""
    cfg = experiment.train_config
    rows = min(train_rows, cfg.max_samples) if cfg.max_samples else train_rows
    val = min(val_rows, cfg.max_val_samples) if cfg.max_val_samples else val_rows
    return cfg.epochs * (rows / rate + val / (3 * rate)) / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--experiments", help="comma-separated subset of the default list")
    parser.add_argument(
        "--hf-model",
        action="append",
        default=[],
        metavar="HUB_ID=PATH",
        help="local snapshot for the entries naming HUB_ID (repeatable)",
    )
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--cpu-batch", type=int, default=8, help="batch size on CPU")
    parser.add_argument("--cpu-steps", type=int, default=2)
    parser.add_argument("--cuda-steps", type=int, default=20)
    parser.add_argument("--amp", default="auto", help="autocast on CUDA: auto | bf16 | fp16 | off")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument(
        "--config",
        default=str(Path(__file__).resolve().parents[1] / "config.yaml"),
        help="config.yaml whose experiments are benchmarked",
    )
    parser.add_argument("--train-rows", type=int, default=22_000, help="balanced training rows (projection)")
    parser.add_argument("--val-rows", type=int, default=5_000, help="validation rows (projection)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = yaml.safe_load(Path(args.config).read_text())
    experiments = resolve_all(config["experiments"], config["training"])
    if args.experiments:
        experiments = {k: experiments[k] for k in args.experiments.split(",")}
    tmp = tempfile.TemporaryDirectory()
    snapshots = dict(item.split("=", 1) for item in args.hf_model)
    stand_in = None
    for name, exp in list(experiments.items()):
        if exp.architecture == "hf_encoder":
            path = snapshots.get(exp.model_config.model_path)
            if path is None:
                stand_in = stand_in or str(build_tiny_hf_model(Path(tmp.name) / "tiny"))
            cfg = dataclasses.replace(
                exp.model_config,
                model_path=path or stand_in,
                trust_remote_code=args.trust_remote_code and path is not None,
            )
            experiments[name] = dataclasses.replace(exp, model_config=cfg)
    hf_note = ", ".join(args.hf_model) or "tiny stand-in (not HyenaDNA)"

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("CUDA not available: CPU only")
        devices = [d for d in devices if d != "cuda"]
    for dev in devices:
        device = torch.device(dev)
        label = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {args.threads} thread(s)"
        print(f"\n== {label}; autocast {amp_dtype(device, args.amp)}; HF entries: {hf_note}")
        print(f"{'experiment':30s} {'model':10s} {'ctx':>5s} {'batch':>5s} {'samples/s':>10s} {'projected h':>12s}")
        total = 0.0
        for name, exp in experiments.items():
            batch = exp.train_config.batch_size if dev == "cuda" else min(args.cpu_batch, exp.train_config.batch_size)
            steps = args.cuda_steps if dev == "cuda" else args.cpu_steps
            rate = measure(
                exp,
                device,
                batch,
                steps,
                warmup=3 if dev == "cuda" else 1,
                amp=args.amp,
                compile_model=args.compile and dev == "cuda",
            )
            hours = projected_hours(exp, rate, args.train_rows, args.val_rows)
            total += hours
            print(
                f"{name:30s} {exp.architecture:10s} {exp.context:5d} {batch:5d} {rate:10.1f} {hours:12.3f}", flush=True
            )
        print(f"{'default list, every epoch':30s} {'':10s} {'':5s} {'':5s} {'':10s} {total:12.3f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
