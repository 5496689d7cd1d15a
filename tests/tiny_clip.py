"""Tiny random-weight CLIP, BLIP-2 and DINOv2 checkpoints, written to disk for the real loaders.

Tests save these with ``save_pretrained`` into a temporary folder and load them back through
the same code users run (no network, no downloaded weights). The tokenizers are written from
a character-level vocab.json/merges.txt so that every ASCII prompt tokenizes into distinct
tokens and different prompts give different embeddings. Shared with the generator tests
(``tiny_clip_tokenizer`` / ``tiny_clip_text_config`` make the tiny Stable Diffusion text encoder
in ``tiny_models``, ``tiny_vision_config`` its IP-Adapter image encoder).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = [
    "make_images",
    "save_tiny_blip2",
    "save_tiny_clip",
    "save_tiny_dinov2",
    "save_tiny_instructblip",
    "save_tiny_llava",
    "tiny_bert_tokenizer",
    "tiny_clip_text_config",
    "tiny_clip_tokenizer",
    "tiny_vision_config",
    "write_char_bpe_files",
]

_CHARS = string.ascii_lowercase + string.digits + "\"'.,:;!?-()/&"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def write_char_bpe_files(
    folder: Path,
    *,
    special: tuple[str, ...] = (BOS, EOS),
    word_suffix: str = "</w>",
    words: tuple[str, ...] = (),
) -> Path:
    """Write vocab.json and merges.txt: each character alone and word-final, plus specials.

    ``word_suffix`` is "</w>" for CLIP's BPE and "" for GPT-2-style tokenizers (which mark a
    leading space with "Ġ" instead, added here too). ``words`` become single tokens (GPT-2
    style only), with and without the leading space: "Yes" for VQAScore.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens: list[str] = list(special)
    for c in _CHARS + string.ascii_uppercase:
        tokens.append(c)
        if word_suffix:
            tokens.append(c + word_suffix)
        else:
            tokens.append("Ġ" + c)
    if not word_suffix:
        tokens.append("Ġ")
    merges = ["#version: 0.2"]
    if not word_suffix:
        merges += [f"Ġ {c}" for c in _CHARS + string.ascii_uppercase]
        for word in words:
            for pieces in ([word[0], *word[1:]], ["Ġ" + word[0], *word[1:]]):
                current = pieces[0]
                for piece in pieces[1:]:
                    merges.append(f"{current} {piece}")
                    current += piece
                    tokens.append(current)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    return folder


def tiny_clip_tokenizer(folder: Path):
    """A CLIPTokenizer built from written vocab/merges files (max length 77, as in CLIP)."""
    from transformers import CLIPTokenizer

    write_char_bpe_files(Path(folder))
    return CLIPTokenizer(
        vocab=str(Path(folder) / "vocab.json"),
        merges=str(Path(folder) / "merges.txt"),
        model_max_length=77,
    )


def tiny_clip_text_config(tokenizer, *, hidden_size: int = 32, projection_dim: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tiny_vision_config(config_class=None, *, image_size: int = 32, patch_size: int = 8, **extra):
    """The two-layer, 32-wide vision tower of every tiny model here (CLIP, BLIP-2, InstructBLIP,
    LLaVA, the IP-Adapter image encoder); ``config_class`` defaults to CLIPVisionConfig."""
    if config_class is None:
        from transformers import CLIPVisionConfig as config_class

    return config_class(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
        **extra,
    )


def save_tiny_clip(
    folder: Path,
    *,
    projection_dim: int = 32,
    image_size: int = 32,
    patch_size: int = 8,
    seed: int = 0,
) -> Path:
    """Save a tiny random CLIPModel with its processor (tokenizer + image processor) to ``folder``.

    ``projection_dim=768`` gives the embedding width the LAION aesthetic head expects.
    """
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    folder = Path(folder)
    tokenizer = tiny_clip_tokenizer(folder / "_tokenizer_src")
    vision = tiny_vision_config(image_size=image_size, patch_size=patch_size, projection_dim=projection_dim)
    text = tiny_clip_text_config(tokenizer, projection_dim=projection_dim)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_dinov2(folder: Path, *, image_size: int = 28, seed: int = 0) -> Path:
    """Save a tiny random Dinov2Model with its image processor to ``folder``."""
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    folder = Path(folder)
    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=image_size,
        patch_size=7,
    )
    torch.manual_seed(seed)
    Dinov2Model(config).eval().save_pretrained(folder)
    BitImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


def _tiny_gpt2_tokenizer(folder: Path):
    """A GPT2Tokenizer from written vocab/merges, where "Yes"/"yes"/"No"/"no" (with and
    without a leading space) are single tokens, plus an ``<image>`` special token."""
    from transformers import GPT2Tokenizer

    src = write_char_bpe_files(
        folder, special=("<pad>", "</s>", "<unk>"), word_suffix="", words=("Yes", "yes", "No", "no")
    )
    tokenizer = GPT2Tokenizer(
        vocab=str(src / "vocab.json"),
        merges=str(src / "merges.txt"),
        bos_token="</s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tokenizer


def tiny_bert_tokenizer():
    """A character-level BertTokenizer (WordPiece: each character, and each as "##" suffix),
    the kind of tokenizer real InstructBLIP checkpoints ship in ``qformer_tokenizer/``
    (bert-base-uncased's). Its 103 ids are fewer than the GPT-2-style tokenizer's, so a
    Q-Former fed the language model's token ids instead would index past its embedding."""
    from transformers import BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_CHARS, *(f"##{c}" for c in _CHARS)]
    return BertTokenizer(vocab={token: i for i, token in enumerate(tokens)})


def _tiny_language_config(kind: str, tokenizer):
    """A two-layer OPT, T5 or Llama config over ``tokenizer``'s vocabulary."""
    from transformers import LlamaConfig, OPTConfig, T5Config

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if kind == "opt":
        return OPTConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=37,
            max_position_embeddings=128,
            word_embed_proj_dim=32,
            **ids,
        )
    if kind == "t5":
        return T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=tokenizer.pad_token_id,
            **ids,
        )
    if kind == "llama":
        return LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            **ids,
        )
    raise ValueError(f"`kind` must be 'opt', 't5' or 'llama', got {kind!r}.")


def _tiny_qformer_config(config_class, tokenizer, **extra):
    """A two-layer Q-Former over ``tokenizer``'s vocabulary, reading the tiny vision tower."""
    return config_class(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        encoder_hidden_size=32,
        vocab_size=len(tokenizer),
        **extra,
    )


def save_tiny_blip2(
    folder: Path,
    *,
    text_model: str = "opt",
    num_query_tokens: int = 4,
    image_size: int = 30,
    seed: int = 0,
) -> Path:
    """Save a tiny random BLIP-2 (OPT or Flan-T5-style T5 language model) with its processor.

    ``<image>`` is a special token and ``num_query_tokens`` sits on both the config and the
    processor, as BLIP-2's processor expands one ``<image>`` per query token.
    """
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessorPil,
    )

    folder = Path(folder)
    tokenizer = _tiny_gpt2_tokenizer(folder / "_tokenizer_src")
    vision = tiny_vision_config(Blip2VisionConfig, image_size=image_size, patch_size=6)
    qformer = _tiny_qformer_config(Blip2QFormerConfig, tokenizer)
    config = Blip2Config(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=_tiny_language_config(text_model, tokenizer).to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    Blip2ForConditionalGeneration(config).eval().save_pretrained(folder)
    image_processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size})
    Blip2Processor(
        image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=num_query_tokens
    ).save_pretrained(folder)
    return folder


def save_tiny_instructblip(folder: Path, *, num_query_tokens: int = 4, image_size: int = 30, seed: int = 0) -> Path:
    """Save a tiny random InstructBLIP (T5 language model) laid out like
    Salesforce/instructblip-flan-t5-xl: the language model's GPT-2-style tokenizer at the top,
    and the Q-Former's own, different tokenizer (a tiny BERT, as the real checkpoints ship) in
    ``qformer_tokenizer/``."""
    from transformers import (
        BlipImageProcessorPil,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
        InstructBlipQFormerConfig,
        InstructBlipVisionConfig,
    )

    folder = Path(folder)
    tokenizer = _tiny_gpt2_tokenizer(folder / "_tokenizer_src")
    qformer_tokenizer = tiny_bert_tokenizer()
    vision = tiny_vision_config(InstructBlipVisionConfig, image_size=image_size, patch_size=6)
    qformer = _tiny_qformer_config(
        InstructBlipQFormerConfig, qformer_tokenizer, pad_token_id=qformer_tokenizer.pad_token_id
    )
    config = InstructBlipConfig(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=_tiny_language_config("t5", tokenizer).to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    InstructBlipForConditionalGeneration(config).eval().save_pretrained(folder)
    InstructBlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
        qformer_tokenizer=qformer_tokenizer,
        num_query_tokens=num_query_tokens,
    ).save_pretrained(folder)
    return folder


LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %} {% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def save_tiny_llava(folder: Path, *, image_size: int = 32, patch_size: int = 8, seed: int = 0) -> Path:
    """Save a tiny random LLaVA (CLIP vision tower, Llama language model) with a processor
    that carries a LLaVA-1.5-style chat template."""
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    folder = Path(folder)
    tokenizer = _tiny_gpt2_tokenizer(folder / "_tokenizer_src")
    vision = tiny_vision_config(image_size=image_size, patch_size=patch_size, projection_dim=32)
    config = LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=_tiny_language_config("llama", tokenizer).to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).eval().save_pretrained(folder)
    LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    ).save_pretrained(folder)
    return folder


def make_images(n: int, *, size: int = 40, seed: int = 0) -> list[Image.Image]:
    """``n`` distinct seeded RGB images (smooth gradients plus noise, so embeddings differ)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        base = rng.integers(0, 256, size=3)
        yy, xx = np.mgrid[0:size, 0:size]
        grad = np.stack(
            [(xx * rng.uniform(0.5, 6)) % 256, (yy * rng.uniform(0.5, 6)) % 256, (xx + yy) % 256],
            -1,
        )
        noise = rng.integers(0, 64, size=(size, size, 3))
        arr = ((grad + base + noise) % 256).astype(np.uint8)
        images.append(Image.fromarray(arr, "RGB"))
    return images
