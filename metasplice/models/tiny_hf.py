"""A tiny Hugging Face DNA model built locally: the offline stand-in for HyenaDNA.

The hub is unreachable offline (tests, CI, the demo), so the demo experiments that name HyenaDNA in
the real list point at this snapshot instead. It is a randomly initialised 2-layer BERT with a
character-level tokenizer ([CLS] + one token per base + [SEP]), saved with ``save_pretrained``;
it is loaded through exactly the same ``AutoModel`` / ``AutoTokenizer`` code as HyenaDNA, needs no
remote code, and says nothing about HyenaDNA's accuracy.

    python -m metasplice.models.tiny_hf OUT_DIR
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

VOCAB = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "G", "T", "N")
README = """\
# tiny character-level DNA model (offline stand-in for HyenaDNA)

Built by `metasplice.models.tiny_hf.build_tiny_hf_model` (seed {seed}): a randomly initialised BERT
(hidden {hidden}, {layers} layers, {heads} heads, up to {max_length} tokens) and a character-level
tokenizer ({vocab}). It exercises the Hugging Face loading, tokenization and fine-tuning code offline;
its predictions mean nothing.
"""


def build_tiny_hf_model(
    out_dir: str | os.PathLike,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_length: int = 4096,
    seed: int = 0,
) -> Path:
    """Save a tiny BERT + character tokenizer snapshot to ``out_dir`` (replaced whole); return the path."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = Path(out_dir)
    vocab = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_length + 2,
        pad_token_id=vocab["[PAD]"],
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
        torch.manual_seed(seed)
        model = BertModel(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(
            README.format(
                seed=seed, hidden=hidden, layers=layers, heads=heads, max_length=max_length, vocab=" ".join(VOCAB)
            )
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m metasplice.models.tiny_hf OUT_DIR")
    print(f"built {build_tiny_hf_model(sys.argv[1])}")
