"""Meta-models: one module per architecture, built from a dataclass config saved in the checkpoint.

- ``gated_cnn``  (:mod:`.gated_cnn`)   gated dilated residual CNN over ref + alt; delta or binary task
- ``long_cnn``   (:mod:`.long_cnn`)    the same network, deeper and exponentially dilated for 2001 nt
- ``hf_encoder`` (:mod:`.hf_encoder`)  HyenaDNA / any AutoModel DNA encoder + read-out + head

Hugging Face code is imported only when an ``hf_encoder`` is built.
"""

from metasplice.models.common import DS_TARGETS, TASKS
from metasplice.models.registry import (
    ARCHITECTURES,
    architecture,
    build_model,
    config_fields,
    load_checkpoint,
    load_model,
    model_config,
    save_model,
)

__all__ = [
    "ARCHITECTURES",
    "DS_TARGETS",
    "TASKS",
    "architecture",
    "build_model",
    "config_fields",
    "load_checkpoint",
    "load_model",
    "model_config",
    "save_model",
]
