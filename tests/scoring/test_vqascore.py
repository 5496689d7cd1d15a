"""VQAScore on tiny random vision-language models built offline: BLIP-2 (OPT and T5),
InstructBLIP (T5) and LLaVA (Llama, chat template)."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from PIL import Image

from imageforge.scoring.base import Scorer
from imageforge.scoring.vqascore import (
    VQA_QUESTION,
    T2VMetricsVQAScorer,
    VQAScorer,
    load_t2v_metrics_scorer,
    load_vqa_model,
    load_vqa_scorer,
    yes_token_ids,
)
from imageforge.tools.model_cache import ModelCache
from tests.tiny_clip import make_images, save_tiny_blip2, save_tiny_instructblip, save_tiny_llava

PROMPT = "a red cat sleeping on a sofa"
BUILDERS = {
    "blip2-opt": lambda path: save_tiny_blip2(path, text_model="opt"),
    "blip2-t5": lambda path: save_tiny_blip2(path, text_model="t5"),
    "instructblip-t5": save_tiny_instructblip,
    "llava": save_tiny_llava,
}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-vlms")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def blip2(tiny_dirs):
    return load_vqa_model(str(tiny_dirs["blip2-opt"]), device="cpu", models=ModelCache())


def _first_step_probability(vqa, image: Image.Image, question: str, yes_ids: list[int]) -> float:
    """P(yes) from transformers' own generate(): the logits of the first generated token."""
    inputs = vqa.processor(images=[image], text=[vqa.prompt(question)], return_tensors="pt")
    with torch.no_grad():
        out = vqa.model.generate(
            **inputs,
            max_new_tokens=1,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return float(out.logits[0][0].float().softmax(-1)[yes_ids].sum())


def test_blip2_probability_is_in_unit_range_and_changes_with_the_text(blip2):
    scorer = VQAScorer(vqa=blip2, batch_size=4)
    assert isinstance(scorer, Scorer) and scorer.slot == "vqa" and not scorer.stand_in
    images = make_images(3)
    cat = scorer.probabilities(images, PROMPT)
    room = scorer.probabilities(images, "an empty blue room with two windows")
    assert all(0.0 <= p <= 1.0 for p in cat + room)
    assert cat != pytest.approx(room, abs=1e-6)
    assert scorer.score(images, PROMPT) == pytest.approx([100 * p for p in cat])


@pytest.mark.parametrize("family", list(BUILDERS))
def test_probability_is_the_next_token_at_the_answer_position(tiny_dirs, family):
    vqa = load_vqa_model(str(tiny_dirs[family]), device="cpu", models=ModelCache())
    scorer = VQAScorer(vqa=vqa, batch_size=2)
    images = make_images(3, seed=7)
    ours = scorer.probabilities(images, PROMPT)
    question = VQA_QUESTION.format(PROMPT)
    expected = [_first_step_probability(vqa, im, question, yes_token_ids(vqa.tokenizer)) for im in images]
    assert ours == pytest.approx(expected, abs=1e-5)
    assert ours != pytest.approx(scorer.probabilities(images, "two dogs"), abs=1e-7)


def test_families_and_prompts(tiny_dirs):
    kinds = {}
    for name, folder in tiny_dirs.items():
        vqa = load_vqa_model(str(folder), device="cpu", models=ModelCache())
        kinds[name] = (vqa.family, vqa.encoder_decoder)
    assert kinds == {
        "blip2-opt": ("blip-2", False),
        "blip2-t5": ("blip-2", True),
        "instructblip-t5": ("instructblip", True),
        "llava": ("chat", False),
    }
    llava = load_vqa_model(str(tiny_dirs["llava"]), device="cpu", models=ModelCache())
    prompt = llava.prompt(VQA_QUESTION.format("a cat"))
    assert prompt.startswith("USER: <image>") and prompt.endswith("ASSISTANT:")
    assert 'Does this figure show "a cat"? Please answer yes or no.' in prompt


@pytest.mark.parametrize("batch_size, passes", [(5, 1), (2, 3)])
def test_one_forward_pass_per_batch_and_batching_does_not_change_results(blip2, batch_size, passes):
    images = make_images(5, seed=11)
    calls = []
    hook = blip2.model.vision_model.register_forward_hook(lambda *a: calls.append(1))
    batched = VQAScorer(vqa=blip2, batch_size=batch_size).probabilities(images, PROMPT)
    hook.remove()
    assert len(calls) == passes
    single = [VQAScorer(vqa=blip2, batch_size=1).probabilities([im], PROMPT)[0] for im in images]
    assert batched == pytest.approx(single, abs=1e-5)


def test_yes_token_ids_keeps_single_token_spellings(blip2, clip_dir):
    tok = blip2.tokenizer
    ids = yes_token_ids(tok)
    assert sorted(tok.convert_ids_to_tokens(ids)) == sorted(["Yes", "ĠYes", "yes", "Ġyes"])
    assert yes_token_ids(tok, ("Yes",)) == sorted(tok.convert_tokens_to_ids(["Yes", "ĠYes"]))
    from transformers import AutoTokenizer

    clip_tokenizer = AutoTokenizer.from_pretrained(str(clip_dir))
    with pytest.raises(ValueError, match="single token"):
        yes_token_ids(clip_tokenizer, ("Yes",))


def test_bad_arguments(blip2):
    with pytest.raises(ValueError, match="exactly one"):
        VQAScorer(vqa=blip2, question="Is this good?")
    with pytest.raises(ValueError, match="`batch_size`"):
        VQAScorer(vqa=blip2, batch_size=0)
    scorer = VQAScorer(vqa=blip2)
    assert scorer.score([], PROMPT) == []
    with pytest.raises(TypeError, match="`prompt` must be a string"):
        scorer.score(make_images(1), 3)


def test_loader_uses_the_registry_once(tiny_dirs):
    models = ModelCache()
    a = load_vqa_scorer(model=str(tiny_dirs["blip2-opt"]), device="cpu", models=models)
    b = load_vqa_scorer(model=str(tiny_dirs["blip2-opt"]), device="cpu", models=models)
    assert a.vqa is b.vqa
    assert [(m.kind, m.device) for m in models.loaded()] == [("vqa", "cpu")]


def test_t2v_metrics_adapter_explains_when_the_package_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "t2v_metrics", None)  # makes `import t2v_metrics` fail
    with pytest.raises(ImportError, match="t2v_metrics package is not installed"):
        load_t2v_metrics_scorer(device="cpu", models=ModelCache())


def test_t2v_metrics_adapter_passes_image_files_and_batch_size(monkeypatch):
    """Against t2v_metrics' documented contract: VQAScore(model, device) and
    batch_forward(dataset=[{'images': [path], 'texts': [text]}], batch_size) -> (N, 1, 1)."""
    seen = {}

    class FakeVQAScore:
        def __init__(self, model, device):
            seen["init"] = (model, device)

        def batch_forward(self, dataset, batch_size):
            seen["batch_size"] = batch_size
            seen["texts"] = [item["texts"] for item in dataset]
            # "Probability" = mean red channel of the file written, to prove the files are the images.
            values = [Image.open(item["images"][0]).convert("RGB").getpixel((0, 0))[0] / 255 for item in dataset]
            return torch.tensor(values).reshape(-1, 1, 1)

    monkeypatch.setitem(sys.modules, "t2v_metrics", types.SimpleNamespace(VQAScore=FakeVQAScore))
    scorer = load_t2v_metrics_scorer(model="clip-flant5-xl", device="cpu", batch_size=3, models=ModelCache())
    assert isinstance(scorer, T2VMetricsVQAScorer) and isinstance(scorer, Scorer)
    images = [Image.new("RGB", (8, 8), (r, 0, 0)) for r in (0, 51, 255)]
    assert scorer.score(images, PROMPT) == pytest.approx([0.0, 20.0, 100.0])
    assert seen == {"init": ("clip-flant5-xl", "cpu"), "batch_size": 3, "texts": [[PROMPT]] * 3}


def test_long_prompts_are_cut_to_fit_not_failed(tiny_dirs):
    scorer = load_vqa_scorer(model=str(tiny_dirs["blip2-opt"]), device="cpu")
    scorer.max_prompt_tokens = 16
    long_prompt = "a red cup on a wooden table " * 40
    assert len(scorer.vqa.tokenizer(long_prompt, add_special_tokens=False)["input_ids"]) > 16
    [p] = scorer.probabilities(make_images(1), long_prompt)
    assert 0.0 <= p <= 1.0
    assert scorer._fit("short") == "short"


# -- InstructBLIP's own Q-Former tokenizer (issue 11, point 1) ------------------------------


@pytest.mark.gpu
def test_instructblip_uses_its_own_qformer_tokenizer(tiny_dirs, device):
    """The tiny InstructBLIP ships a Q-Former tokenizer (BERT WordPiece) that differs from the
    language model's, as the real checkpoint does; the Q-Former must get its ids."""
    # bf16 on a CUDA GPU that has it (InstructBLIP's Flan-T5), fp32 on the CPU.
    vqa = load_vqa_model(str(tiny_dirs["instructblip-t5"]), device=device, models=ModelCache())
    qformer_tokenizer = vqa.processor.qformer_tokenizer
    assert type(qformer_tokenizer).__name__ == "BertTokenizer"
    assert type(vqa.processor.tokenizer).__name__ != "BertTokenizer"
    seen: list[torch.Tensor] = []
    hook = vqa.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["qformer_input_ids"].clone()), with_kwargs=True
    )
    try:
        VQAScorer(vqa=vqa).probabilities(make_images(1), PROMPT)
    finally:
        hook.remove()
    question = VQA_QUESTION.format(PROMPT)
    expected = qformer_tokenizer(f"Question: {question}")["input_ids"]
    assert seen[0][0].cpu().tolist()[: len(expected)] == expected
    assert expected != vqa.processor.tokenizer(f"Question: {question}")["input_ids"]


def test_instructblip_without_its_qformer_tokenizer_is_refused(tiny_dirs, tmp_path):
    import shutil

    from imageforge.tools.model_cache import ModelNotAvailableError

    broken = tmp_path / "instructblip-no-qformer-tokenizer"
    shutil.copytree(tiny_dirs["instructblip-t5"], broken)
    shutil.rmtree(broken / "qformer_tokenizer")
    with pytest.raises(ModelNotAvailableError, match=r"has no qformer_tokenizer/.*imageforge models pull vqa"):
        load_vqa_model(str(broken), device="cpu", models=ModelCache())
    # Even where downloading is allowed: a local folder is never quietly loaded without it.
    with pytest.raises(ModelNotAvailableError, match="qformer_tokenizer/"):
        load_vqa_model(str(broken), device="cpu", allow_download=True, models=ModelCache())


def test_a_processor_whose_qformer_tokenizer_does_not_fit_is_refused(tiny_dirs):
    """What transformers' fallback produces (the language model's tokenizer for the Q-Former)
    is refused at load time, not discovered as an IndexError mid-scoring."""
    from transformers import AutoConfig

    from imageforge.scoring.vqascore import _check_qformer_tokenizer

    folder = str(tiny_dirs["instructblip-t5"])
    vqa = load_vqa_model(folder, device="cpu", models=ModelCache())
    config = AutoConfig.from_pretrained(folder)
    fallback = types.SimpleNamespace(qformer_tokenizer=vqa.processor.tokenizer)
    with pytest.raises(ValueError, match="qformer_tokenizer/"):
        _check_qformer_tokenizer(fallback, config, folder)
    _check_qformer_tokenizer(vqa.processor, config, folder)
