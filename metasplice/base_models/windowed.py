"""The oracle backend: one full-window forward per reference and per alt window, as the SpliceAI CLI.

For every job the reference window (``n_ref`` outputs + the model's context) and the alt window are
cut from the segment, one-hot encoded (N = all zeros) and run through the ensemble with 'same'
zero padding, exactly the computation of ``spliceai.utils.get_delta_scores`` (batched, without
Keras). It is slow (about 2 x 5 x 10,101 positions per allele) and kept as the reference that the
incremental engine is tested against.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from metasplice.base_models.jobs import AltJob, Segment, alt_sequence
from metasplice.base_models.spliceai.model import Ensemble

_ONE_HOT = np.concatenate([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])


def one_hot(tokens: np.ndarray) -> np.ndarray:
    """(..., L) uint8 tokens -> (..., 4, L) float32 one-hot, N (4) -> zeros."""
    return np.moveaxis(_ONE_HOT[np.asarray(tokens, dtype=np.int64)], -1, -2)


class WindowedBackend:
    """Full-window ensemble forward per job (the obviously-correct path)."""

    def __init__(self, model: Ensemble, device: str | torch.device = "cpu", batch_size: int = 8) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.flank = model.context // 2

    def _forward(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """Ensemble probabilities (L - context, 3) for each token window; equal lengths are batched."""
        out: list[np.ndarray | None] = [None] * len(windows)
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, w in enumerate(windows):
            by_len[len(w)].append(i)
        with torch.inference_mode():
            for idx in by_len.values():
                for s in range(0, len(idx), self.batch_size):
                    part = idx[s : s + self.batch_size]
                    x = torch.from_numpy(one_hot(np.stack([windows[i] for i in part]))).to(self.device)
                    y = self.model(x).float().cpu().numpy()  # (B, 3, L')
                    for j, i in enumerate(part):
                        out[i] = np.ascontiguousarray(y[j].T)
        return out  # type: ignore[return-value]

    def predict(
        self, segments: Sequence[Segment], jobs: Sequence[AltJob], progress: Callable[[int], None] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(reference (n_ref, 3), alt (n_alt, 3)) probabilities per job, model orientation."""
        f = self.flank
        windows: list[np.ndarray] = []
        for job in jobs:
            seg = segments[job.segment]
            ref_win = seg.tokens[job.ref_lo - f : job.ref_lo + job.n_ref + f]
            alt_win = alt_sequence(seg, job)[job.alt_lo - f : job.alt_lo + job.n_alt + f]
            if job.ref_lo - f < 0 or len(ref_win) != job.n_ref + 2 * f or len(alt_win) != job.n_alt + 2 * f:
                raise ValueError(f"job window outside its segment ({seg.label})")
            windows += [ref_win, alt_win]
        probs = self._forward(windows)
        if progress is not None:
            progress(len(jobs))
        return [(probs[2 * i], probs[2 * i + 1]) for i in range(len(jobs))]
