"""What a prediction backend is asked to compute: reference segments and alt-allele edits.

Both backends (:mod:`.windowed`, the full-window oracle, and :mod:`.engine`, the incremental one)
work in *model orientation*: a minus-strand gene's segment is already reverse-complemented, and the
edit and output ranges are given in that orientation. :mod:`.scoring` maps results back to the genome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    """A transcript-masked stretch of one gene (model orientation), shared by its variants.

    ``tokens`` are uint8 A,C,G,T,N = 0..4; every position outside the gene's transcript is N.
    """

    tokens: np.ndarray
    label: str = ""  # for messages: gene and genome span

    @property
    def length(self) -> int:
        return int(self.tokens.shape[0])


@dataclass(frozen=True)
class AltJob:
    """One allele on one segment: replace ``tokens[edit : edit + ref_len]`` by ``alt``.

    Outputs wanted: reference probabilities at segment positions ``ref_lo .. ref_lo + n_ref - 1``
    and alt probabilities at alt-sequence positions ``alt_lo .. alt_lo + n_alt - 1`` (alt-sequence
    coordinates equal segment coordinates left of the edit and are shifted by
    ``len(alt) - ref_len`` right of it).
    """

    segment: int
    edit: int
    ref_len: int
    alt: np.ndarray
    ref_lo: int
    n_ref: int
    alt_lo: int
    n_alt: int

    @property
    def alt_len(self) -> int:
        return int(self.alt.shape[0])

    @property
    def shift(self) -> int:
        return self.alt_len - self.ref_len


def alt_sequence(segment: Segment, job: AltJob) -> np.ndarray:
    """The segment with the job's edit applied (model orientation)."""
    t = segment.tokens
    return np.concatenate([t[: job.edit], job.alt.astype(np.uint8), t[job.edit + job.ref_len :]])
