"""Raw per-position probabilities against the official Keras models (needs TensorFlow).

TensorFlow is never a dependency of metasplice. The test runs when ``tensorflow`` imports in this
interpreter, or when METASPLICE_TF_PYTHON names a Python that has ``tensorflow`` and ``spliceai``
(e.g. a separate venv: ``pip install tensorflow-cpu==2.15.* spliceai==1.3.1``); otherwise it is
skipped.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_spliceai_fixtures import DATA, spliceai_model  # noqa: F401

from metasplice.base_models.spliceai.model import official_weight_paths
from metasplice.base_models.windowed import one_hot
from metasplice.data.genome import Genome, encode, reverse_complement

KERAS_PREDICT = r"""
import sys, numpy as np
from keras.models import load_model
data = np.load(sys.argv[1])
x = data["x"].astype("float32")
paths = [str(p) for p in data["paths"]]
out = np.stack([load_model(p, compile=False).predict(x, verbose=0) for p in paths])
np.save(sys.argv[2], out)
"""


def keras_python() -> str | None:
    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    return os.environ.get("METASPLICE_TF_PYTHON") or None


@pytest.mark.skipif(
    keras_python() is None,
    reason="TensorFlow is not installed here; set METASPLICE_TF_PYTHON to a Python with tensorflow and spliceai "
    "(e.g. a venv with `pip install tensorflow-cpu==2.15.* spliceai==1.3.1`) to compare with the Keras models",
)
def test_probabilities_match_keras(tmp_path, spliceai_model) -> None:
    with Genome(DATA / "test.fa") as genome:
        ref = encode(genome.fetch("chr10", 94077 - 5051, 94077 + 5050))  # the TUBB8 acceptor window, D=50
    ref[:200] = 4  # some masking, as outside a transcript
    alt = ref.copy()
    alt[5050] = 1
    windows = np.stack([reverse_complement(ref), reverse_complement(alt), ref])
    x = one_hot(windows).transpose(0, 2, 1)  # (B, L, 4) Keras layout
    np.savez(tmp_path / "in.npz", x=x, paths=np.array([str(p) for p in official_weight_paths()]))
    subprocess.run(
        [keras_python(), "-c", KERAS_PREDICT, str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
        check=True,
        capture_output=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    keras = np.load(tmp_path / "out.npy")  # (5, B, 101, 3)
    with torch.no_grad():
        members = np.stack(
            [m(torch.from_numpy(one_hot(windows))).numpy().transpose(0, 2, 1) for m in spliceai_model.members]
        )
    assert members.shape == keras.shape
    np.testing.assert_allclose(members, keras, atol=1e-4, rtol=0)
    np.testing.assert_allclose(members.mean(0), keras.mean(0), atol=1e-4, rtol=0)
    assert np.abs(members - keras).max() < 1e-5  # in practice float32 rounding only
