"""OpenSpliceAI checkpoints: our loader against the openspliceai package's own model (when installed)
and against an independent functional forward of a checkpoint built in its documented format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metasplice.base_models.engine import IncrementalBackend
from metasplice.base_models.jobs import AltJob, Segment
from metasplice.base_models.openspliceai import FLANKING_GROUPS, load_openspliceai_ensemble
from metasplice.base_models.windowed import WindowedBackend, one_hot

GROUPS = ((11, 1), (11, 4), (21, 10), (41, 25))


def documented_state_dict(flanking: int, seed: int) -> dict[str, torch.Tensor]:
    """Random weights under OpenSpliceAI's state-dict keys (initial_conv, initial_skip.conv,
    residual_units.{i} with a Skip after every 4th unit, final_conv)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    sd = {
        "initial_conv.weight": rnd(32, 4, 1),
        "initial_conv.bias": rnd(32),
        "initial_skip.conv.weight": rnd(32, 32, 1),
        "initial_skip.conv.bias": rnd(32),
        "final_conv.weight": rnd(3, 32, 1, scale=1.0),
        "final_conv.bias": rnd(3),
    }
    i = 0
    for k, _ in GROUPS[: FLANKING_GROUPS[flanking]]:
        for _ in range(4):
            for bn in ("batchnorm1", "batchnorm2"):
                sd[f"residual_units.{i}.{bn}.weight"] = 1 + rnd(32)
                sd[f"residual_units.{i}.{bn}.bias"] = rnd(32)
                sd[f"residual_units.{i}.{bn}.running_mean"] = rnd(32)
                sd[f"residual_units.{i}.{bn}.running_var"] = 0.5 + torch.rand(32, generator=g)
                sd[f"residual_units.{i}.{bn}.num_batches_tracked"] = torch.tensor(100)
            for conv in ("conv1", "conv2"):
                sd[f"residual_units.{i}.{conv}.weight"] = rnd(32, 32, k, scale=0.05)
                sd[f"residual_units.{i}.{conv}.bias"] = rnd(32)
            i += 1
        sd[f"residual_units.{i}.conv.weight"] = rnd(32, 32, 1)
        sd[f"residual_units.{i}.conv.bias"] = rnd(32)
        i += 1
    return sd


def functional_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, flanking: int) -> torch.Tensor:
    """OpenSpliceAI's forward written out from its description: BN(eps 1e-5) -> LeakyReLU(0.1) -> conv."""
    h = F.conv1d(x, sd["initial_conv.weight"], sd["initial_conv.bias"])
    skip = F.conv1d(h, sd["initial_skip.conv.weight"], sd["initial_skip.conv.bias"])
    i = 0
    for k, d in GROUPS[: FLANKING_GROUPS[flanking]]:
        for _ in range(4):
            r = h
            for bn, conv in (("batchnorm1", "conv1"), ("batchnorm2", "conv2")):
                p = f"residual_units.{i}."
                r = F.batch_norm(
                    r,
                    sd[p + bn + ".running_mean"],
                    sd[p + bn + ".running_var"],
                    sd[p + bn + ".weight"],
                    sd[p + bn + ".bias"],
                    False,
                    0.0,
                    1e-5,
                )
                r = F.conv1d(
                    F.leaky_relu(r, 0.1),
                    sd[p + conv + ".weight"],
                    sd[p + conv + ".bias"],
                    dilation=d,
                    padding=(k - 1) // 2 * d,
                )
            h = h + r
            i += 1
        skip = skip + F.conv1d(h, sd[f"residual_units.{i}.conv.weight"], sd[f"residual_units.{i}.conv.bias"])
        i += 1
    crop = flanking // 2
    return torch.softmax(F.conv1d(skip[:, :, crop:-crop], sd["final_conv.weight"], sd["final_conv.bias"]), dim=1)


def random_input(length: int, seed: int = 0) -> torch.Tensor:
    tokens = np.random.default_rng(seed).integers(0, 5, (2, length))
    return torch.from_numpy(one_hot(tokens))


@pytest.mark.parametrize("flanking", [80, 400])
def test_documented_checkpoint_loads_and_matches_functional_forward(tmp_path, flanking) -> None:
    paths = []
    for seed in (1, 2):
        sd = documented_state_dict(flanking, seed)
        path = tmp_path / f"model_{flanking}nt_rs{seed}.pt"
        torch.save({f"module.{k}": v for k, v in sd.items()} if seed == 2 else sd, path)  # DataParallel prefix too
        paths.append(path)
    model = load_openspliceai_ensemble(paths, flanking_size=flanking)
    assert model.context == flanking
    x = random_input(flanking + 60)
    with torch.no_grad():
        expected = sum(functional_forward(documented_state_dict(flanking, s), x, flanking) for s in (1, 2)) / 2
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=2e-6)
    with pytest.raises(ValueError, match="not an OpenSpliceAI 2000nt checkpoint"):
        load_openspliceai_ensemble(paths[:1], flanking_size=2000)
    with pytest.raises(ValueError, match="checkpoint paths"):
        load_openspliceai_ensemble([], flanking_size=flanking)


def test_package_model_checkpoint_gives_the_same_outputs(tmp_path) -> None:
    pkg = pytest.importorskip(
        "openspliceai.train_base.openspliceai",
        reason="openspliceai is not installed (`pip install openspliceai`); "
        "the documented-format test covers the loader",
    )
    torch.manual_seed(0)
    flanking = 10000
    k = np.asarray([11] * 8 + [21] * 4 + [41] * 4)
    ar = np.asarray([1] * 4 + [4] * 4 + [10] * 4 + [25] * 4)
    theirs = pkg.SpliceAI(32, k, ar)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    theirs.eval()
    path = tmp_path / "model_10000nt_rs10.pt"
    torch.save(theirs.state_dict(), path)
    ours = load_openspliceai_ensemble([path], flanking_size=flanking)
    x = random_input(flanking + 40, seed=3)
    with torch.no_grad():
        np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), atol=1e-5)
    # and the incremental engine runs it (LeakyReLU path) with the oracle's numbers
    rng = np.random.default_rng(4)
    seg = Segment(rng.integers(0, 5, 10101 + 300).astype(np.uint8))
    jobs = [
        AltJob(0, 5200, 1, np.array([2], np.uint8), 5150, 101, 5150, 101),
        AltJob(0, 5300, 3, np.array([0], np.uint8), 5250, 101, 5250, 99),
    ]
    for (er, ea), (gr, ga) in zip(
        WindowedBackend(ours).predict([seg], jobs), IncrementalBackend(ours).predict([seg], jobs)
    ):
        np.testing.assert_allclose(gr, er, atol=1e-5)
        np.testing.assert_allclose(ga, ea, atol=1e-5)
