"""Foundation-model encoder (HyenaDNA or any ``AutoModel``-loadable DNA model) with a pooled head.

    ref, alt (B, L) tokens -> "ACGTN" strings -> the model's own tokenizer -> input ids (2B, T)
    encoder (frozen, or its last ``finetune_layers`` blocks trained) -> hidden (2B, T, d) -> LayerNorm
    read-out per window: attention pooling over the sequence tokens (+ the token holding the variant's
    first REF base, ``readout: centre+attention``) -> f_ref, f_alt
    head: MLP on [f_alt, f_alt - f_ref] -> one output per target (``delta``), one logit (``binary``),
          one logit per effect class (``effect_type``) or quantiles per target (``quantile``)

Tasks: the pooled heads only (:data:`SUPPORTED_TASKS`); ``localisation`` and ``multitask`` need
per-position features and are refused with an error naming the model.

Loading: ``model_path`` is a local snapshot directory (config.json, weights, tokenizer files) or a hub
id ``organisation/name`` (e.g. ``LongSafari/hyenadna-small-32k-seqlen-hf``); ``revision`` pins a hub
commit. ``trust_remote_code`` is passed to transformers only as the config sets it (HyenaDNA needs it).
Any load failure raises; nothing falls back to another model.

Tokenization: the tokenizer is always the model's own (``AutoTokenizer``). When it is character-level
(HyenaDNA's is), it is compiled once into a token -> id lookup table plus its fixed special-token prefix
and suffix, and that table is checked against the tokenizer itself on probe windows of the model's
context before use; batches are then tokenized on the device. Otherwise (k-mer/BPE tokenizers, or
``fast_char_tokenizer: false``) the tokenizer is called on every batch.

Fine-tuning: the encoder's block list is found automatically (the largest ``nn.ModuleList`` of
same-class blocks, e.g. ``backbone.layers`` in HyenaDNA, ``encoder.layer`` in BERT) or named by
``layers_path``. ``finetune_layers: N`` trains the last N blocks and every encoder parameter
registered after them (final norm); ``-1`` trains the whole encoder; ``0`` freezes it (it then runs
in eval mode under ``torch.no_grad``). The head and the encoder are separate optimiser groups; the
encoder's learning rate is the base rate times ``encoder_lr_scale``.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from metasplice.models.common import (
    DS_TARGETS,
    AttentionPool,
    MLPHead,
    check_task,
    check_task_options,
    check_tokens,
    count_parameters,
    output_names,
)

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
READOUTS = ("centre+attention", "attention")
ALPHABET = np.frombuffer(b"ACGTN", dtype=np.uint8)
HIDDEN_SIZE_KEYS = ("hidden_size", "d_model", "n_embd", "dim", "embed_dim")
SUPPORTED_TASKS = ("delta", "binary", "effect_type", "quantile")


@dataclass
class HFEncoderConfig:
    """Hyper-parameters of :class:`HFEncoderModel` (saved inside every checkpoint)."""

    model_path: str = ""  # local snapshot directory or hub id (organisation/name)
    revision: str | None = None  # hub revision (commit, tag or branch); None = default branch
    trust_remote_code: bool = False  # run the model's own code (HyenaDNA needs it); only when set
    task: str = "delta"  # delta | binary | effect_type | quantile
    targets: tuple[str, ...] = DS_TARGETS
    context: int = 1001  # window length L; the variant sits at L // 2
    finetune_layers: int = 0  # 0 frozen, N last N blocks, -1 the whole encoder
    encoder_lr_scale: float = 0.1  # encoder learning rate = base rate * this
    layers_path: str | None = None  # dotted path of the encoder's block ModuleList; None = found
    head_hidden: int = 256
    attention_heads: int = 4
    dropout: float = 0.1
    readout: str = "centre+attention"  # centre+attention | attention
    fast_char_tokenizer: bool = True  # lookup table for character-level tokenizers (checked)
    # task options (see metasplice.models.common.TASK_OPTIONS)
    complex_fraction: float = 0.5  # effect type "complex" when a 2nd DS >= this x the largest
    min_effect_score: float = 0.0  # Splice-altering rows whose largest DS <= this get no class
    class_weighting: str = "none"  # none | balanced: cross-entropy weights of the effect classes
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # quantile levels (strictly increasing, in (0, 1))

    def __post_init__(self) -> None:
        check_task(self.task, self.targets, SUPPORTED_TASKS, "hf_encoder")
        check_task_options(self)
        if not self.model_path:
            raise ValueError(
                "HFEncoderConfig.model_path is empty: give a Hugging Face hub id such as "
                "LongSafari/hyenadna-small-32k-seqlen-hf or a local snapshot directory"
            )
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}; known: {', '.join(READOUTS)}")
        if self.finetune_layers < -1:
            raise ValueError(f"finetune_layers must be -1 (all), 0 (frozen) or N > 0, got {self.finetune_layers}")
        if self.encoder_lr_scale <= 0:
            raise ValueError(f"encoder_lr_scale must be > 0, got {self.encoder_lr_scale}")
        for name in ("context", "head_hidden", "attention_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"HFEncoderConfig.{name} must be >= 1, got {getattr(self, name)}")


def resolve_model_source(model_path: str) -> str:
    """A local snapshot directory (as given) or a hub id; anything else is a FileNotFoundError."""
    path = Path(model_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"Hugging Face model path {model_path!r} is a file; give the snapshot directory")
        return str(path)
    if HUB_ID.fullmatch(model_path):
        return model_path
    raise FileNotFoundError(
        f"Hugging Face model path {model_path!r} is neither an existing local snapshot directory nor a hub id "
        "of the form organisation/name; build or download the snapshot first"
    )


def _load_error(what: str, config: HFEncoderConfig, error: Exception) -> RuntimeError:
    hint = ""
    if not config.trust_remote_code and "trust_remote_code" in str(error):
        hint = " This model ships its own code: set trust_remote_code: true for it in the experiment config."
    return RuntimeError(
        f"could not load the {what} of Hugging Face model {config.model_path!r} "
        f"(revision={config.revision}, trust_remote_code={config.trust_remote_code}): "
        f"{type(error).__name__}: {error}.{hint}"
    )


def load_tokenizer(config: HFEncoderConfig) -> Any:
    """The model's own tokenizer through ``AutoTokenizer``; raises RuntimeError when it can't load."""
    from transformers import AutoTokenizer

    source = resolve_model_source(config.model_path)
    try:
        return AutoTokenizer.from_pretrained(
            source, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except Exception as error:
        raise _load_error("tokenizer", config, error) from error


def load_encoder(config: HFEncoderConfig, pretrained: bool = True) -> nn.Module:
    """``AutoModel`` with pretrained weights, or (``pretrained=False``) built from its config only."""
    from transformers import AutoConfig, AutoModel

    source = resolve_model_source(config.model_path)
    kwargs = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    try:
        if pretrained:
            return AutoModel.from_pretrained(source, **kwargs)
        hf_config = AutoConfig.from_pretrained(source, **kwargs)
        return AutoModel.from_config(hf_config, trust_remote_code=config.trust_remote_code)
    except Exception as error:
        raise _load_error("model", config, error) from error


def find_layers(encoder: nn.Module, layers_path: str | None = None) -> tuple[str, nn.ModuleList]:
    """(dotted path, block list) of the encoder: ``layers_path`` or the largest list of same-class blocks."""
    if layers_path:
        try:
            layers = encoder.get_submodule(layers_path)
        except AttributeError as error:
            raise ValueError(f"layers_path {layers_path!r} is not a submodule of {type(encoder).__name__}") from error
        if not isinstance(layers, nn.ModuleList):
            raise ValueError(f"layers_path {layers_path!r} is a {type(layers).__name__}, not an nn.ModuleList")
        return layers_path, layers
    candidates = [
        (sum(p.numel() for p in module.parameters()), name, module)
        for name, module in encoder.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0 and len({type(m) for m in module}) == 1
    ]
    if not candidates:
        raise ValueError(f"no block list found in {type(encoder).__name__}; set layers_path in the model config")
    _, name, module = max(candidates, key=lambda c: c[0])
    return name, module


def set_trainable(encoder: nn.Module, finetune_layers: int, layers_path: str | None = None) -> None:
    """Freeze the encoder, then unfreeze its last ``finetune_layers`` blocks and what follows them (-1: all)."""
    for p in encoder.parameters():
        p.requires_grad_(finetune_layers == -1)
    if finetune_layers <= 0:
        return
    path, layers = find_layers(encoder, layers_path)
    if finetune_layers > len(layers):
        raise ValueError(f"finetune_layers={finetune_layers} but the encoder has {len(layers)} blocks at {path!r}")
    first = f"{path}.{len(layers) - finetune_layers}." if path else f"{len(layers) - finetune_layers}."
    names = [name for name, _ in encoder.named_parameters()]
    start = next(i for i, name in enumerate(names) if name.startswith(first))
    for _, p in list(encoder.named_parameters())[start:]:
        p.requires_grad_(True)


def hidden_size(encoder: nn.Module) -> int:
    """Width of the encoder's hidden states, from its config."""
    cfg = getattr(encoder, "config", None)
    for key in HIDDEN_SIZE_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(
        f"can't tell the hidden size of {type(encoder).__name__}: its config has none of {HIDDEN_SIZE_KEYS}"
    )


def vocabulary_size(encoder: nn.Module) -> int | None:
    """Token ids the encoder accepts: the smaller of its config's ``vocab_size`` and the rows of its input
    embedding (``get_input_embeddings()`` or else its first ``nn.Embedding``); None when it shows neither."""
    sizes = []
    value = getattr(getattr(encoder, "config", None), "vocab_size", None)
    if isinstance(value, int) and value > 0:
        sizes.append(value)
    try:
        embedding = encoder.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        embedding = next((m for m in encoder.modules() if isinstance(m, nn.Embedding)), None)
    if isinstance(embedding, nn.Embedding):
        sizes.append(embedding.num_embeddings)
    return min(sizes) if sizes else None


def base_vocabulary_id(tokenizer: Any, token_id: int) -> int | None:
    """The id a slow tokenizer's own base table gives the token behind ``token_id``, when that table lists it
    under the same string (``_convert_token_to_id`` / ``_convert_id_to_token`` round trip); else None."""
    token = tokenizer.convert_ids_to_tokens(int(token_id))
    to_id, to_token = getattr(tokenizer, "_convert_token_to_id", None), getattr(tokenizer, "_convert_id_to_token", None)
    if not isinstance(token, str) or to_id is None or to_token is None:
        return None
    try:
        base = int(to_id(token))
        return base if to_token(base) == token else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def decode(tokens: np.ndarray) -> list[str]:
    """uint8 tokens (B, L) -> B strings over "ACGTN"."""
    return [row.tobytes().decode("ascii") for row in ALPHABET[np.asarray(tokens, dtype=np.intp)]]


class HFEncoderModel(nn.Module):
    """Hugging Face encoder + read-out + head; forward(ref, alt) -> raw outputs (B, n_outputs)."""

    architecture: ClassVar[str] = "hf_encoder"
    has_pretrained_weights: ClassVar[bool] = True

    def __init__(self, config: HFEncoderConfig, pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = load_tokenizer(config)
        self.encoder = load_encoder(config, pretrained=pretrained)
        set_trainable(self.encoder, config.finetune_layers, config.layers_path)
        self.frozen = not any(p.requires_grad for p in self.encoder.parameters())
        d = hidden_size(self.encoder)
        self.norm = nn.LayerNorm(d)
        self.pool = AttentionPool(d, config.attention_heads)
        per_window = d * config.attention_heads + (d if config.readout == "centre+attention" else 0)
        self.head = MLPHead(2 * per_window, config.head_hidden, len(self.output_names), config.dropout)
        self._forward_keys = set(inspect.signature(self.encoder.forward).parameters)
        self.vocab_limit = vocabulary_size(self.encoder)
        self._setup_fast_tokenizer()
        self._check_token_ids()
        if config.readout == "centre+attention":
            self._check_centre_readout()
        total, trainable = count_parameters(self)
        enc_total, enc_trainable = count_parameters(self.encoder)
        log.info(
            "HF encoder %s (%s): %s parameters, %s trainable (encoder %s, %s trainable; finetune_layers=%d); "
            "tokenizer %s%s",
            config.model_path,
            type(self.encoder).__name__,
            f"{total:,}",
            f"{trainable:,}",
            f"{enc_total:,}",
            f"{enc_trainable:,}",
            config.finetune_layers,
            type(self.tokenizer).__name__,
            " compiled to a checked lookup table" if self.char_table else " called per batch",
        )

    @property
    def output_names(self) -> tuple[str, ...]:
        return output_names(self.config.task, self.config.targets, self.config)

    # --- tokenization -------------------------------------------------------------------------
    def _setup_fast_tokenizer(self) -> None:
        """Compile a character-level tokenizer into (lookup, prefix, suffix) buffers, checked on probes."""
        self.char_table = False
        if not self.config.fast_char_tokenizer:
            return
        table = []
        for letter in "ACGTN":
            ids = self.tokenizer(letter, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                return
            table.append(ids[0])
        lut = torch.tensor(table, dtype=torch.long)
        rng = np.random.default_rng(0)
        probes = [rng.integers(0, 5, self.config.context, dtype=np.uint8) for _ in range(3)]
        prefix = suffix = None
        for probe in probes:
            actual = self.tokenizer(decode(probe[None])[0])["input_ids"]
            body = lut[torch.from_numpy(probe).long()].tolist()
            n_extra = len(actual) - len(body)
            starts = [i for i in range(n_extra + 1) if actual[i : i + len(body)] == body] if n_extra >= 0 else []
            if len(starts) != 1:
                return
            pre, suf = actual[: starts[0]], actual[starts[0] + len(body) :]
            if prefix is not None and (pre, suf) != (prefix, suffix):
                return
            prefix, suffix = pre, suf
        prefix, suffix = self._in_vocabulary(prefix), self._in_vocabulary(suffix)
        self.register_buffer("_lut", lut, persistent=False)
        self.register_buffer("_prefix", torch.tensor(prefix, dtype=torch.long), persistent=False)
        self.register_buffer("_suffix", torch.tensor(suffix, dtype=torch.long), persistent=False)
        self.char_table = True

    def _in_vocabulary(self, ids: list[int]) -> list[int]:
        """Special-token ids of the compiled table, each given outside the model's vocabulary moved to the id
        of the tokenizer's own base table (logged). HyenaDNA's CharacterTokenizer needs this under
        transformers >= 4.34: its get_vocab() leaves out [CLS]/[SEP], so transformers re-adds them after
        the vocabulary (ids 12+ against the model's 12) while its own table says 0 and 1."""
        limit, out = self.vocab_limit, []
        for i in ids:
            base = base_vocabulary_id(self.tokenizer, i) if limit is not None and i >= limit else None
            if base is not None and base < limit:
                log.warning(
                    "tokenizer of %s gives %s the id %d, outside the model's %d-token vocabulary; using %d, "
                    "its id in the tokenizer's own vocabulary table",
                    self.config.model_path,
                    self.tokenizer.convert_ids_to_tokens(i),
                    i,
                    limit,
                    base,
                )
                i = base
            out.append(i)
        return out

    def _check_token_ids(self) -> None:
        """Every id the tokenizer gives a window must index the model's vocabulary (else the embedding lookup
        fails, or silently reads an untrained row)."""
        if self.vocab_limit is None:
            return
        if self.char_table:
            self._check_ids(torch.cat([self._lut, self._prefix, self._suffix]))
        else:  # encode() checks every batch; a probe makes a mismatch fail at load time
            probe = np.random.default_rng(2).integers(0, 5, (2, self.config.context), dtype=np.uint8)
            self.encode(torch.from_numpy(probe))

    def _check_ids(self, ids: torch.Tensor) -> None:
        bad = ids >= self.vocab_limit
        if bool(bad.any()):
            wrong = sorted(set(ids[bad].tolist()))
            raise ValueError(
                f"the tokenizer of Hugging Face model {self.config.model_path!r} ({type(self.tokenizer).__name__}) "
                f"gives token ids {wrong} ({self.tokenizer.convert_ids_to_tokens(wrong)}), but the model's "
                f"vocabulary has {self.vocab_limit} ids (0..{self.vocab_limit - 1}): the tokenizer files do not "
                "match the model. Use the tokenizer files of the same snapshot and revision as the weights."
            )

    def encode(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tokens (N, L) -> input_ids, attention_mask (N, T), sequence mask (N, T, True on sequence
        tokens), centre (N,) index of the token holding position L // 2 (-1 when not located)."""
        device = tokens.device
        n, length = tokens.shape
        if self.char_table:
            ids = self._lut[tokens.long()]
            p, s = self._prefix, self._suffix
            ids = torch.cat([p.expand(n, -1), ids, s.expand(n, -1)], dim=1)
            seq_mask = torch.zeros_like(ids, dtype=torch.bool)
            seq_mask[:, len(p) : len(p) + length] = True
            centre = torch.full((n,), len(p) + length // 2, dtype=torch.long, device=device)
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "seq_mask": seq_mask, "centre": centre}
        want_offsets = bool(getattr(self.tokenizer, "is_fast", False))
        enc = self.tokenizer(
            decode(tokens.cpu().numpy()),
            padding=True,
            return_special_tokens_mask=True,
            return_offsets_mapping=want_offsets,
            return_tensors="pt",
        )
        if self.vocab_limit is not None:
            self._check_ids(enc["input_ids"])
        seq_mask = ~enc["special_tokens_mask"].bool()
        attention = enc.get("attention_mask", torch.ones_like(enc["input_ids"]))
        centre = torch.full((n,), -1, dtype=torch.long)
        position = length // 2
        if bool((seq_mask.sum(1) == length).all()):  # one token per base
            hit = (seq_mask.cumsum(1) == position + 1) & seq_mask
            centre = hit.float().argmax(1)
        elif want_offsets:
            start, end = enc["offset_mapping"][..., 0], enc["offset_mapping"][..., 1]
            hit = (start <= position) & (position < end) & seq_mask
            centre = torch.where(hit.any(1), hit.float().argmax(1), centre)
        out = {"input_ids": enc["input_ids"], "attention_mask": attention, "seq_mask": seq_mask, "centre": centre}
        return {k: v.to(device) for k, v in out.items()}

    def _check_centre_readout(self) -> None:
        probe = torch.from_numpy(np.random.default_rng(1).integers(0, 5, (2, self.config.context), dtype=np.uint8))
        if bool((self.encode(probe)["centre"] < 0).any()):
            raise ValueError(
                f"readout 'centre+attention' needs the token holding the variant, but the tokenizer of "
                f"{self.config.model_path!r} ({type(self.tokenizer).__name__}) is neither character-level nor "
                "gives offsets; set readout: attention for this model"
            )

    # --- forward ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> HFEncoderModel:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def _hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        kwargs = {"input_ids": batch["input_ids"]}
        if "attention_mask" in self._forward_keys:
            kwargs["attention_mask"] = batch["attention_mask"]
        if "return_dict" in self._forward_keys:
            kwargs["return_dict"] = True
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.encoder(**kwargs)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return self.norm(hidden)

    def forward(self, ref: torch.Tensor, alt: torch.Tensor) -> torch.Tensor:
        check_tokens(ref, alt, self.config.context)
        batch = self.encode(torch.cat([ref, alt]))
        hidden = self._hidden(batch)  # (2B, T, d)
        features = [self.pool(hidden.transpose(1, 2), batch["seq_mask"])]
        if self.config.readout == "centre+attention":
            features.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), batch["centre"]])
        f_ref, f_alt = torch.cat(features, dim=1).chunk(2)
        return self.head(torch.cat([f_alt, f_alt - f_ref], dim=1))

    def param_groups(self, lr: float) -> list[dict]:
        """Head group at ``lr``; trainable encoder parameters at ``lr * encoder_lr_scale``."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        head = [p for p in self.parameters() if id(p) not in encoder_ids and p.requires_grad]
        groups = [{"name": "head", "params": head, "lr": lr}]
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        if encoder:
            groups.append({"name": "encoder", "params": encoder, "lr": lr * self.config.encoder_lr_scale})
        return groups
