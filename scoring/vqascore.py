"""VQAScore (Lin et al. 2024): how sure a vision-language model is that the image shows the
prompt, as P("Yes") for the t2v-metrics question
``Does this figure show "{prompt}"? Please answer yes or no.``, mapped to 0-100 (P * 100).

One forward pass per batch of images gives the next-token distribution at the answer
position: the first decoder step for encoder-decoder models (Flan-T5), the last attended
prompt position for decoder-only ones (OPT, Vicuna, LLaMA, Qwen).

"Yes" is summed over its spellings: "Yes" and "yes", each with and without the leading-space
marker, keeping those that are one token in the model's vocabulary. They are one answer
written differently (BLIP-2 OPT tends to say "yes", chat models "Yes"), and as distinct
next tokens their probabilities add. t2v-metrics instead takes the probability of one exact
answer string ("Yes", or "yes" for InstructBLIP) and, for Flan-T5, of the whole answer
sequence including its end token, so its values are a little lower than these.

Families (chosen from the checkpoint's ``model_type``):

* ``blip-2``: Blip2ForConditionalGeneration, OPT and Flan-T5 variants, prompt
  ``Question: {question} Answer:`` (tested on tiny OPT and Flan-T5 models).
* ``instructblip``: InstructBlipForConditionalGeneration, Flan-T5 and Vicuna variants,
  prompt ``Question: {question}`` as t2v-metrics asks it (tested on a tiny Flan-T5 model).
* anything ``AutoModelForImageTextToText`` loads whose processor has a chat template, such as
  LLaVA-1.5 / LLaVA-NeXT and Qwen2-VL / Qwen2.5-VL: one user turn with the image and the
  question, then the generation prompt (tested on a tiny LLaVA model).

``T2VMetricsVQAScorer`` wraps the t2v_metrics package itself when it is installed (it pins
old torch/transformers, so it lives in its own environment and is never required).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from imageforge.scoring.clip_backbone import (
    check_batch_size,
    check_score_inputs,
    pil_backend_kwargs,
    scorer_dtype,
    torch_dtype_kwargs,
)
from imageforge.scoring.frames import whole_frame, whole_frames
from imageforge.scoring.normalise import probability_to_100
from imageforge.scoring.schemas import Slot
from imageforge.tools.devices import device_lock, dtype_name, resolve_device
from imageforge.tools.model_cache import ModelCache, model_cache, resolve_weights

__all__ = [
    "DEFAULT_VQA_MODEL",
    "VQA_QUESTION",
    "T2VMetricsVQAScorer",
    "VQAModel",
    "VQAScorer",
    "load_t2v_metrics_scorer",
    "load_vqa_model",
    "load_vqa_scorer",
    "vqa_dtype",
    "yes_token_ids",
]

VQA_QUESTION = 'Does this figure show "{}"? Please answer yes or no.'
DEFAULT_VQA_MODEL = "Salesforce/instructblip-flan-t5-xl"
Family = Literal["blip-2", "instructblip", "chat"]
PROMPT_TEMPLATES: dict[str, str] = {
    "blip-2": "Question: {} Answer:",
    "instructblip": "Question: {}",
}


def yes_token_ids(tokenizer: Any, words: Sequence[str] = ("Yes", "yes")) -> list[int]:
    """Token ids of ``words`` with and without a leading space, keeping single-token spellings."""
    ids: set[int] = set()
    for word in words:
        for variant in (word, " " + word):
            encoded = tokenizer.encode(variant, add_special_tokens=False)
            if len(encoded) == 1:
                ids.add(int(encoded[0]))
    if not ids:
        raise ValueError(
            f"None of the spellings of {list(words)!r} is a single token for this tokenizer "
            f"({type(tokenizer).__name__}); pass `yes_words` that are."
        )
    return sorted(ids)


def _last_attended(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row, whatever the padding side."""
    width = attention_mask.shape[1]
    return width - 1 - attention_mask.flip(1).to(torch.long).argmax(dim=1)


@dataclass(eq=False)
class VQAModel:
    """A loaded vision-language model and its processor, with what scoring needs to know."""

    model: Any
    processor: Any
    family: Family
    name: str
    device: str = "cpu"

    @property
    def encoder_decoder(self) -> bool:
        config = self.model.config
        if hasattr(config, "use_decoder_only_language_model"):
            return not config.use_decoder_only_language_model
        text = getattr(config, "text_config", config)
        return bool(getattr(text, "is_encoder_decoder", False))

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def prompt(self, question: str) -> str:
        if self.family == "chat":
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return PROMPT_TEMPLATES[self.family].format(question)

    def next_token_logits(self, images: Sequence[Image.Image], question: str) -> torch.Tensor:
        """(len(images), vocab) logits of the answer's first token; one forward pass."""
        text = self.prompt(question)
        inputs = self.processor(
            # The whole frame at its proportions (scoring.frames): BLIP's resize would squash it.
            images=whole_frames(images, self.processor),
            text=[text] * len(images),
            padding=True,
            return_tensors="pt",
        )
        dtype = next(self.model.parameters()).dtype
        inputs = {
            k: v.to(self.device, dtype) if torch.is_floating_point(v) else v.to(self.device)
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor)
        }
        with torch.inference_mode(), device_lock(self.device):  # one model call at a time (tools.devices)
            if self.encoder_decoder:
                text_config = getattr(self.model.config, "text_config", self.model.config)
                start = text_config.decoder_start_token_id
                if start is None:
                    raise ValueError(f"Model {self.name!r} has no `decoder_start_token_id` in its text config.")
                decoder_input_ids = torch.full((len(images), 1), int(start), dtype=torch.long, device=self.device)
                logits = self.model(**inputs, decoder_input_ids=decoder_input_ids).logits[:, 0]
            else:
                logits = self.model(**inputs).logits
                # Older BLIP-2 code prepends the query outputs to the logits without input ids.
                offset = logits.shape[1] - inputs["attention_mask"].shape[1]
                positions = _last_attended(inputs["attention_mask"]) + offset
                logits = logits[torch.arange(len(images), device=logits.device), positions]
        return logits.float()


@dataclass(eq=False)
class VQAScorer:
    """Scorer for the "vqa" slot. ``probabilities`` gives P("Yes") in [0, 1]."""

    vqa: VQAModel
    batch_size: int = 4
    question: str = VQA_QUESTION
    yes_words: tuple[str, ...] = ("Yes", "yes")
    #: Enhanced prompts run to a few hundred tokens; InstructBLIP's Q-Former and small LMs take
    #: 512 positions in all, so the prompt (never the question around it) is cut to fit.
    max_prompt_tokens: int = 256
    name: str = "vqascore"
    slot: Slot = "vqa"
    stand_in: bool = False
    model: str = ""
    _yes_ids: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if self.question.count("{}") != 1:
            raise ValueError(f"`question` must contain exactly one '{{}}' for the prompt, got {self.question!r}.")
        self.model = self.model or self.vqa.name
        self._yes_ids = yes_token_ids(self.vqa.tokenizer, self.yes_words)

    def probabilities(self, images: Sequence[Image.Image], prompt: str) -> list[float]:
        check_score_inputs(images, prompt)
        question = self.question.format(self._fit(prompt))
        out: list[float] = []
        for start in range(0, len(images), self.batch_size):
            logits = self.vqa.next_token_logits(images[start : start + self.batch_size], question)
            probs = logits.softmax(dim=-1)[:, self._yes_ids].sum(dim=-1)
            out.extend(probs.clamp(0.0, 1.0).cpu().tolist())
        return out

    def _fit(self, prompt: str) -> str:
        ids = self.vqa.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_prompt_tokens:
            return prompt
        return self.vqa.tokenizer.decode(ids[: self.max_prompt_tokens], skip_special_tokens=True).strip()

    def score(self, images: list[Image.Image], prompt: str) -> list[float]:
        return [probability_to_100(p) for p in self.probabilities(images, prompt)]


def vqa_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA where supported: Flan-T5 was trained in bf16 and can overflow in fp16
    (t2v-metrics runs it under bf16 autocast); fp16 on older GPUs, fp32 elsewhere."""
    return scorer_dtype(device, prefer_bf16=True)


def _family(model_type: str) -> Family:
    if model_type in ("blip-2", "instructblip"):
        return model_type  # type: ignore[return-value]
    return "chat"


def _check_qformer_tokenizer(processor: Any, config: Any, model: str) -> None:
    """InstructBLIP's Q-Former must get its own tokenizer's ids. The loaders refuse a folder
    without ``qformer_tokenizer/`` (``tools.model_store.missing_subfolders``); this catches a
    processor that got one anyway from elsewhere (transformers falls back to the language
    model's tokenizer): ids past the Q-Former's vocabulary would make every score wrong."""
    tokenizer = getattr(processor, "qformer_tokenizer", None)
    vocab_size = int(getattr(getattr(config, "qformer_config", None), "vocab_size", 0) or 0)
    if tokenizer is None or (vocab_size and len(tokenizer) > vocab_size):
        found = "none" if tokenizer is None else f"{type(tokenizer).__name__} with {len(tokenizer)} entries"
        raise ValueError(
            f"`model` {model!r}: the Q-Former tokenizer ({found}) does not fit the Q-Former's {vocab_size}-entry "
            "vocabulary; its qformer_tokenizer/ folder is missing or wrong. Fetch it again with "
            "`imageforge models pull vqa` (or `hf download REPO --include 'qformer_tokenizer/*'`)."
        )


def load_vqa_model(
    model: str = DEFAULT_VQA_MODEL,
    *,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> VQAModel:
    """Load (once per process) a vision-language model and its processor from a local path or
    the Hugging Face cache; ``ModelNotAvailableError`` when absent and not allowed to download."""
    device = resolve_device(device)
    dtype = dtype or vqa_dtype(device)
    key = f"vqa|{model}|{device}|{dtype_name(dtype)}"

    def load() -> VQAModel:
        import transformers
        from transformers import AutoConfig, AutoProcessor, PreTrainedModel

        source, local_only = resolve_weights(model, allow_download=allow_download)
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        family = _family(config.model_type)
        from_pretrained: dict[str, Callable[..., PreTrainedModel]] = {
            "blip-2": transformers.Blip2ForConditionalGeneration.from_pretrained,
            "instructblip": transformers.InstructBlipForConditionalGeneration.from_pretrained,
            "chat": transformers.AutoModelForImageTextToText.from_pretrained,
        }
        vlm = from_pretrained[family](source, local_files_only=local_only, **torch_dtype_kwargs(dtype))
        processor = AutoProcessor.from_pretrained(source, local_files_only=local_only, **pil_backend_kwargs())
        if family == "instructblip":
            _check_qformer_tokenizer(processor, config, model)
        if family == "chat" and not getattr(processor, "chat_template", None):
            raise ValueError(
                f"`model` {model!r} ({config.model_type}) is neither BLIP-2 nor InstructBLIP and its "
                "processor has no chat template, so there is no way to ask it the question."
            )
        return VQAModel(
            # transformers declares `to` through @wraps(Module.to), which hides the bound self from mypy.
            model=vlm.to(device).eval(),  # type: ignore[arg-type]
            processor=processor,
            family=family,
            name=model,
            device=device,
        )

    return models.get(key, load, device=device, kind="vqa")


def load_vqa_scorer(
    *,
    model: str = DEFAULT_VQA_MODEL,
    device: str = "auto",
    batch_size: int = 4,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> VQAScorer:
    """VQAScore on a local or cached vision-language model (see the module docstring for
    the families). InstructBLIP / BLIP-2 Flan-T5-XL: ~8 GB in fp16."""
    vqa = load_vqa_model(model, device=device, allow_download=allow_download, models=models)
    return VQAScorer(vqa=vqa, batch_size=batch_size)


@dataclass(eq=False)
class T2VMetricsVQAScorer:
    """VQAScore through the t2v_metrics package (``t2v_metrics.VQAScore``), for its models
    that transformers lacks (CLIP-FlanT5). It reads images from files, so each batch is
    written to a temporary folder as PNG."""

    metric: Any
    model: str
    batch_size: int = 4
    name: str = "vqascore (t2v-metrics)"
    slot: Slot = "vqa"
    stand_in: bool = False

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)

    def score(self, images: list[Image.Image], prompt: str) -> list[float]:
        check_score_inputs(images, prompt)
        if not images:
            return []
        with tempfile.TemporaryDirectory(prefix="imageforge-vqa-") as folder:
            paths = []
            for i, image in enumerate(images):
                path = Path(folder) / f"image_{i}.png"
                whole_frame(image).save(path)
                paths.append(str(path))
            dataset = [{"images": [path], "texts": [prompt]} for path in paths]
            scores = self.metric.batch_forward(dataset=dataset, batch_size=self.batch_size)
        values = torch.as_tensor(scores).detach().float().reshape(len(images), -1)[:, 0].cpu().tolist()
        return [probability_to_100(p) for p in values]


def load_t2v_metrics_scorer(
    *,
    model: str = "clip-flant5-xxl",
    device: str = "auto",
    batch_size: int = 4,
    models: ModelCache = model_cache,
) -> T2VMetricsVQAScorer:
    """The t2v_metrics adapter; ``ImportError`` with what to do when the package is missing."""
    try:
        import t2v_metrics
    except ImportError as exc:
        raise ImportError(
            "The t2v_metrics package is not installed. It pins torch 2.5 / transformers 4.49 / "
            "numpy 1.26, so install it (`pip install t2v-metrics`) in a separate environment, or use "
            "VQAScorer, which computes the same P('Yes') with the installed transformers."
        ) from exc
    device = resolve_device(device)
    metric = models.get(
        f"t2v-metrics|{model}|{device}",
        lambda: t2v_metrics.VQAScore(model=model, device=device),
        device=device,
        kind="vqa",
    )
    return T2VMetricsVQAScorer(metric=metric, model=model, batch_size=batch_size)
