"""Meta-models: each trains (loss decreases), round-trips through its checkpoint, validates its config;
Hugging Face encoders load through AutoModel/AutoTokenizer from local snapshots built here."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import numpy as np
import pytest
import torch

from metasplice.models import build_model, load_checkpoint, load_model, model_config, save_model
from metasplice.models.common import one_hot
from metasplice.models.hf_encoder import decode, find_layers, resolve_model_source
from metasplice.models.tiny_hf import build_tiny_hf_model

CONTEXT = 41


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """The pipeline's tiny BERT + fast character tokenizer snapshot."""
    return str(build_tiny_hf_model(tmp_path_factory.mktemp("hf") / "tiny", hidden=16, max_length=256))


# A HyenaDNA-shaped model with its own code (trust_remote_code): backbone.{embeddings, layers, ln_f},
# forward without attention_mask, a slow character tokenizer that appends [SEP] only.
REMOTE_CONFIG = """
from transformers import PretrainedConfig

class TinyHyenaConfig(PretrainedConfig):
    model_type = "tinyhyena"
    def __init__(self, d_model=16, n_layer=3, vocab_size=12, **kwargs):
        self.d_model, self.n_layer, self.vocab_size = d_model, n_layer, vocab_size
        super().__init__(**kwargs)
"""
REMOTE_MODEL = """
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithNoAttention
from .configuration_tinyhyena import TinyHyenaConfig

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm, self.conv, self.mix = nn.LayerNorm(d), nn.Conv1d(d, d, 5, padding=4, groups=d), nn.Linear(d, d)
    def forward(self, x):
        h = self.conv(self.norm(x).transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)
        return x + self.mix(torch.nn.functional.gelu(h))

class Backbone(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config.d_model) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
    def forward(self, ids):
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x)
        return self.ln_f(x)

class TinyHyenaModel(PreTrainedModel):
    config_class = TinyHyenaConfig
    base_model_prefix = "hyena"
    def __init__(self, config):
        super().__init__(config)
        self.backbone = Backbone(config)
        self.post_init()
    def _init_weights(self, module):
        pass
    def forward(self, input_ids, inputs_embeds=None, output_hidden_states=None, return_dict=None):
        return BaseModelOutputWithNoAttention(last_hidden_state=self.backbone(input_ids))
"""
REMOTE_TOKENIZER = """
from transformers.tokenization_utils import AddedToken, PreTrainedTokenizer

class CharTokenizer(PreTrainedTokenizer):
    model_input_names = ["input_ids"]
    def __init__(self, model_max_length=4096, padding_side="left", **kwargs):
        self._vocab_str_to_int = {"[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5,
                                  "[UNK]": 6, **{ch: i + 7 for i, ch in enumerate("ACGTN")}}
        self._vocab_int_to_str = {v: k for k, v in self._vocab_str_to_int.items()}
        super().__init__(bos_token="[BOS]", eos_token="[SEP]", sep_token="[SEP]", cls_token="[CLS]",
                         pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]", add_prefix_space=False,
                         model_max_length=model_max_length, padding_side=padding_side, **kwargs)
    @property
    def vocab_size(self):
        return len(self._vocab_str_to_int)
    def get_vocab(self):
        return dict(self._vocab_str_to_int)
    def _tokenize(self, text, **kwargs):
        return list(text)
    def _convert_token_to_id(self, token):
        return self._vocab_str_to_int.get(token, 6)
    def _convert_id_to_token(self, index):
        return self._vocab_int_to_str[index]
    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)
    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        return token_ids_0 + [1] + ((token_ids_1 + [1]) if token_ids_1 is not None else [])
    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            return [1 if t in (0, 1, 2, 3, 4, 5) else 0 for t in token_ids_0]
        return [0] * len(token_ids_0) + [1]
    def save_vocabulary(self, save_directory, filename_prefix=None):
        return ()
"""


@pytest.fixture(scope="module")
def remote_code_model(tmp_path_factory):
    """A local snapshot of a HyenaDNA-shaped model that needs trust_remote_code (code files + auto_map).

    transformers copies remote code into its modules cache; it is pointed at a temporary directory.
    """
    import transformers.dynamic_module_utils as dynamic

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path_factory.mktemp("hf_modules")))
        yield _write_remote_code_model(tmp_path_factory)


# HyenaDNA's own CharacterTokenizer lists only characters in get_vocab() ({chr(i): i}), so transformers >= 4.34
# re-adds its special tokens after the vocabulary ([SEP] 13, [CLS] 16) while its own table has them at 0 and 1;
# it adds [CLS] + sequence + [SEP]. Variant "unknown": [SEP] is not in its own table either.
HYENA_VOCAB_TOKENIZER = REMOTE_TOKENIZER.replace(
    "return dict(self._vocab_str_to_int)", "return {chr(i): i for i in range(self.vocab_size)}"
).replace("return token_ids_0 + [1] +", "return [self.cls_token_id] + token_ids_0 + [self.sep_token_id] +")
UNKNOWN_SEP_TOKENIZER = HYENA_VOCAB_TOKENIZER.replace('"[SEP]": 1,', '"[SEPARATOR]": 1,')


@pytest.fixture(scope="module")
def hyena_vocab_models(tmp_path_factory, remote_code_model):
    """Snapshots of the HyenaDNA-shaped model with HyenaDNA's get_vocab() behaviour: {"hyena": ..., "unknown": ...}
    (inside remote_code_model's temporary modules cache)."""
    return {
        key: _write_remote_code_model(tmp_path_factory, text, f"tinyhyena_{key}")
        for key, text in [("hyena", HYENA_VOCAB_TOKENIZER), ("unknown", UNKNOWN_SEP_TOKENIZER)]
    }


def _write_remote_code_model(tmp_path_factory, tokenizer: str = REMOTE_TOKENIZER, name: str = "tinyhyena") -> str:
    src = tmp_path_factory.mktemp("remote_src")
    out = tmp_path_factory.mktemp("remote") / name
    for name, text in [
        ("configuration_tinyhyena.py", REMOTE_CONFIG),
        ("modeling_tinyhyena.py", REMOTE_MODEL),
        ("tokenization_tinyhyena.py", tokenizer),
        ("__init__.py", ""),
    ]:
        (src / name).write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(
        "tinyhyena_pkg", src / "__init__.py", submodule_search_locations=[str(src)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["tinyhyena_pkg"] = package
    spec.loader.exec_module(package)
    configuration = importlib.import_module("tinyhyena_pkg.configuration_tinyhyena")
    modeling = importlib.import_module("tinyhyena_pkg.modeling_tinyhyena")
    configuration.TinyHyenaConfig.register_for_auto_class()
    modeling.TinyHyenaModel.register_for_auto_class("AutoModel")
    torch.manual_seed(0)
    modeling.TinyHyenaModel(configuration.TinyHyenaConfig()).save_pretrained(out)
    (out / "tokenization_tinyhyena.py").write_text(textwrap.dedent(tokenizer))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CharTokenizer",
                "model_max_length": 4096,
                "auto_map": {"AutoTokenizer": ["tokenization_tinyhyena.CharTokenizer", None]},
            }
        )
    )
    return str(out)


def toy_batch(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ref/alt windows; half the variants write GT at the centre (donor gain, label 1), half a random SNV."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 4, (n, CONTEXT), dtype=np.uint8)
    alt = ref.copy()
    label = np.arange(n) % 2
    c = CONTEXT // 2
    alt[label == 1, c], alt[label == 1, c + 1] = 2, 3
    alt[label == 0, c] = (ref[label == 0, c] + 1) % 4
    delta = np.zeros((n, 4), np.float32)
    delta[label == 1, 2] = 0.8  # DS_DG
    delta[label == 1, 3] = rng.uniform(0, 0.3, (label == 1).sum())  # DS_DL
    return (
        torch.from_numpy(ref),
        torch.from_numpy(alt),
        torch.from_numpy(delta),
        torch.from_numpy(label.astype(np.float32))[:, None],
    )


MODELS = {
    "cnn_delta": ("gated_cnn", {"task": "delta", "context": CONTEXT, "hidden": 16, "layers": 2, "dropout": 0.0}),
    "cnn_binary": ("gated_cnn", {"task": "binary", "context": CONTEXT, "hidden": 16, "layers": 2, "dropout": 0.0}),
    "long_cnn_delta": (
        "long_cnn",
        {"context": CONTEXT, "hidden": 16, "layers": 4, "dropout": 0.0, "dilation_cycle": [1, 2, 4, 8]},
    ),
    "hf_frozen_delta": (
        "hf_encoder",
        {"task": "delta", "context": CONTEXT, "finetune_layers": 0, "head_hidden": 32, "dropout": 0.0},
    ),
    "hf_finetune_binary": (
        "hf_encoder",
        {
            "task": "binary",
            "context": CONTEXT,
            "finetune_layers": 1,
            "encoder_lr_scale": 0.5,
            "head_hidden": 32,
            "dropout": 0.0,
        },
    ),
    "remote_finetune_delta": (
        "hf_encoder",
        {
            "task": "delta",
            "context": CONTEXT,
            "finetune_layers": 2,
            "trust_remote_code": True,
            "head_hidden": 32,
            "dropout": 0.0,
        },
    ),
}


def make(key: str, tiny_bert: str, remote: str) -> torch.nn.Module:
    name, values = MODELS[key]
    values = dict(values)
    if name == "hf_encoder":
        values["model_path"] = remote if key.startswith("remote") else tiny_bert
    torch.manual_seed(0)
    return build_model(name, model_config(name, values))


@pytest.mark.parametrize("key", sorted(MODELS))
def test_model_trains_and_round_trips(key, tiny_bert, remote_code_model, tmp_path):
    model = make(key, tiny_bert, remote_code_model)
    ref, alt, delta, label = toy_batch()
    y = label if model.config.task == "binary" else delta
    loss_fn = (
        torch.nn.functional.binary_cross_entropy_with_logits
        if model.config.task == "binary"
        else lambda out, t: torch.nn.functional.mse_loss(torch.sigmoid(out), t)
    )
    optimizer = torch.optim.AdamW([g for g in model.param_groups(3e-3) if g["params"]])
    losses = []
    for _ in range(25):
        loss = loss_fn(model(ref, alt), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses

    save_model(tmp_path / "model.pt", model, {"lr": 3e-3}, {"note": "test"})
    checkpoint = load_checkpoint(tmp_path / "model.pt")
    assert checkpoint["architecture"] == model.architecture
    assert checkpoint["model_config"]["context"] == CONTEXT
    assert checkpoint["train_config"] == {"lr": 3e-3}
    rebuilt = load_model(tmp_path / "model.pt")
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ref, alt), rebuilt(ref, alt))


def test_one_hot_on_device_from_uint8():
    tokens = torch.tensor([[0, 1, 2, 3, 4]], dtype=torch.uint8)
    x = one_hot(tokens)
    assert x.shape == (1, 4, 5) and x.dtype == torch.float32
    assert torch.equal(x[0, :, :4], torch.eye(4)) and x[0, :, 4].sum() == 0


def test_cnn_sees_the_variant_and_rejects_wrong_length():
    model = build_model("gated_cnn", model_config("gated_cnn", {"context": CONTEXT, "hidden": 8, "layers": 2}))
    model.eval()
    ref, alt, _, _ = toy_batch(4)
    with torch.no_grad():
        assert not torch.allclose(model(ref, alt), model(ref, ref))
    with pytest.raises(ValueError, match="context 41"):
        model(ref[:, :40], alt[:, :40])


def test_long_cnn_receptive_field_covers_2001():
    cfg = model_config("long_cnn", {})
    assert cfg.context == 2001 and cfg.hidden == 256 and cfg.layers == 10
    assert cfg.receptive_field >= 2001


@pytest.mark.parametrize(
    "values, message",
    [
        ({"task": "regression"}, "unknown task 'regression'; known tasks: delta, binary"),
        ({"targets": ["DS_XX"]}, "unknown delta targets"),
        ({"kernel_size": 4}, "kernel_size must be odd"),
        ({"hidden": 0}, "hidden must be >= 1"),
        ({"widht": 3}, "unknown GatedCNNConfig keys \\['widht'\\]"),
    ],
)
def test_bad_model_config(values, message):
    with pytest.raises(ValueError, match=message):
        model_config("gated_cnn", values)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown model 'transformer'; known models: gated_cnn, hf_encoder, long_cnn"):
        model_config("transformer", {})


def test_delta_target_subset():
    cfg = model_config("gated_cnn", {"context": CONTEXT, "hidden": 8, "layers": 1, "targets": ["DS_AG", "DS_DG"]})
    model = build_model("gated_cnn", cfg)
    ref, alt, _, _ = toy_batch(3)
    assert model(ref, alt).shape == (3, 2) and model.output_names == ("DS_AG", "DS_DG")


def test_hf_fast_tokenizer_matches_own_tokenizer(tiny_bert, remote_code_model):
    ref, alt, _, _ = toy_batch(6)
    ref[0, :5] = 4  # N
    for path, trust in [(tiny_bert, False), (remote_code_model, True)]:
        values = {"model_path": path, "context": CONTEXT, "trust_remote_code": trust}
        fast = build_model("hf_encoder", model_config("hf_encoder", values))
        slow = build_model("hf_encoder", model_config("hf_encoder", {**values, "fast_char_tokenizer": False}))
        assert fast.char_table and not slow.char_table
        a, b = fast.encode(ref), slow.encode(ref)
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["centre"], b["centre"])
        assert torch.equal(a["seq_mask"], b["seq_mask"])
        own = fast.tokenizer(decode(ref.numpy()))["input_ids"]
        assert a["input_ids"].tolist() == own
        # the centre token is the variant's first REF base
        centre_ids = a["input_ids"][torch.arange(6), a["centre"]]
        letter_ids = [fast.tokenizer.convert_tokens_to_ids("ACGTN"[t]) for t in ref[:, CONTEXT // 2].tolist()]
        assert centre_ids.tolist() == letter_ids


def test_hf_special_tokens_outside_the_model_vocabulary(hyena_vocab_models, caplog):
    """HyenaDNA's tokenizer under transformers >= 4.34: [CLS]/[SEP] get ids past the model's 12-token vocabulary
    (the embedding lookup would fail or read an untrained row); the encoder uses the ids of the tokenizer's own
    table, says so, and a special token its table does not know is an error naming the model."""
    from transformers import AutoTokenizer

    path = hyena_vocab_models["hyena"]
    own = AutoTokenizer.from_pretrained(path, trust_remote_code=True)("ACGTN")["input_ids"]
    assert own[1:-1] == [7, 8, 9, 10, 11] and min(own[0], own[-1]) >= 12  # the behaviour being guarded
    values = {"model_path": path, "context": CONTEXT, "trust_remote_code": True}
    with caplog.at_level("WARNING", logger="metasplice.models.hf_encoder"):
        model = build_model("hf_encoder", model_config("hf_encoder", values))
    assert "gives [CLS] the id" in caplog.text and "using 0" in caplog.text
    ref, alt, _, _ = toy_batch(3)
    ids = model.encode(ref)["input_ids"]
    assert ids[:, 0].tolist() == [0, 0, 0] and ids[:, -1].tolist() == [1, 1, 1]
    assert int(ids.max()) < 12
    assert torch.isfinite(model(ref, alt)).all()
    # the per-batch tokenizer path has no compiled table to correct: it refuses the ids at load time
    with pytest.raises(ValueError, match="vocabulary has 12 ids"):
        build_model("hf_encoder", model_config("hf_encoder", {**values, "fast_char_tokenizer": False}))
    unknown = {**values, "model_path": hyena_vocab_models["unknown"]}
    with pytest.raises(ValueError, match=r"gives token ids \[1[0-9]\] \(\['\[SEP\]'\]\).*vocabulary has 12 ids"):
        build_model("hf_encoder", model_config("hf_encoder", unknown))


def test_decode():
    assert decode(np.array([[0, 1, 2, 3, 4]], np.uint8)) == ["ACGTN"]


def test_hf_finetune_last_layers_only(remote_code_model):
    values = {"model_path": remote_code_model, "context": CONTEXT, "trust_remote_code": True, "finetune_layers": 1}
    model = build_model("hf_encoder", model_config("hf_encoder", values))
    path, layers = find_layers(model.encoder)
    assert path == "backbone.layers" and len(layers) == 3
    trainable = {n for n, p in model.encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("backbone.layers.2.", "backbone.ln_f.")) for n in trainable)
    assert any(n.startswith("backbone.ln_f.") for n in trainable)
    groups = {g["name"]: g for g in model.param_groups(1e-3)}
    assert groups["encoder"]["lr"] == pytest.approx(1e-4) and groups["head"]["lr"] == 1e-3
    with pytest.raises(ValueError, match="finetune_layers=4 but the encoder has 3 blocks"):
        build_model("hf_encoder", model_config("hf_encoder", {**values, "finetune_layers": 4}))


def test_hf_frozen_encoder_is_frozen(tiny_bert):
    model = build_model("hf_encoder", model_config("hf_encoder", {"model_path": tiny_bert, "context": CONTEXT}))
    assert model.frozen and not any(p.requires_grad for p in model.encoder.parameters())
    assert [g["name"] for g in model.param_groups(1e-3)] == ["head"]
    model.train()
    assert not model.encoder.training  # frozen encoder stays in eval mode (no dropout)


def test_hf_remote_code_needs_trust_remote_code(remote_code_model):
    values = {"model_path": remote_code_model, "context": CONTEXT}
    with pytest.raises(RuntimeError, match="trust_remote_code"):
        build_model("hf_encoder", model_config("hf_encoder", values))


def test_hf_load_failures_are_errors(tmp_path):
    with pytest.raises(ValueError, match="model_path is empty"):
        model_config("hf_encoder", {})
    with pytest.raises(FileNotFoundError, match="neither an existing local snapshot directory nor a hub id"):
        resolve_model_source(str(tmp_path / "missing" / "snapshot"))
    assert resolve_model_source("LongSafari/hyenadna-small-32k-seqlen-hf") == "LongSafari/hyenadna-small-32k-seqlen-hf"
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="could not load the tokenizer of Hugging Face model"):
        build_model("hf_encoder", model_config("hf_encoder", {"model_path": str(tmp_path / "empty")}))


def test_hf_checkpoint_rebuilds_from_moved_snapshot(tiny_bert, tmp_path):
    import shutil

    model = build_model(
        "hf_encoder", model_config("hf_encoder", {"model_path": tiny_bert, "context": CONTEXT, "finetune_layers": 1})
    )
    save_model(tmp_path / "model.pt", model)
    moved = shutil.copytree(tiny_bert, tmp_path / "moved")
    rebuilt = load_model(tmp_path / "model.pt", model_path=str(moved))
    ref, alt, _, _ = toy_batch(3)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ref, alt), rebuilt(ref, alt))
