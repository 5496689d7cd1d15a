"""The weighted ensemble, by hand."""

from __future__ import annotations

import pytest

from imageforge.scoring.ensemble import combine, deciding_component, effective_weights, ensemble_report, rank
from imageforge.scoring.schemas import BASE_WEIGHTS, ScorerInfo


def test_all_slots_keep_the_seed_weights():
    assert effective_weights(["pickscore", "clip", "vqa", "aesthetic"]) == pytest.approx(BASE_WEIGHTS)


def test_renormalise_clip_and_aesthetic():
    weights = effective_weights(["aesthetic", "clip"])
    assert list(weights) == ["clip", "aesthetic"]  # base order, whatever the input order
    assert weights["clip"] == pytest.approx(0.25 / 0.35)  # 0.714
    assert weights["aesthetic"] == pytest.approx(0.10 / 0.35)  # 0.286
    assert round(weights["clip"], 3) == 0.714 and round(weights["aesthetic"], 3) == 0.286


def test_renormalise_single_and_three_slots():
    assert effective_weights(["aesthetic"]) == {"aesthetic": 1.0}
    weights = effective_weights(["pickscore", "clip", "aesthetic", "clip"])  # duplicates are harmless
    assert weights == pytest.approx({"pickscore": 0.50 / 0.85, "clip": 0.25 / 0.85, "aesthetic": 0.10 / 0.85})
    assert sum(weights.values()) == pytest.approx(1.0)


def test_custom_base():
    assert effective_weights(["a", "b"], {"a": 3.0, "b": 1.0, "c": 4.0}) == {"a": 0.75, "b": 0.25}


def test_effective_weights_errors():
    with pytest.raises(ValueError, match="available"):
        effective_weights([])
    with pytest.raises(ValueError, match="'dino'"):
        effective_weights(["clip", "dino"])
    with pytest.raises(ValueError, match="sum"):
        effective_weights(["a"], {"a": 0.0})


def test_combine_seed_example():
    # Seed 004's worked example: 78.2*0.5 + 82.5*0.25 + 71.3*0.15 + 75.8*0.10 = 78.0.
    components = {"pickscore": [78.2], "clip": [82.5], "vqa": [71.3], "aesthetic": [75.8]}
    [overall] = combine(components, BASE_WEIGHTS)
    assert overall == pytest.approx(39.1 + 20.625 + 10.695 + 7.58)
    assert round(overall, 1) == 78.0


def test_combine_renormalised_by_hand():
    weights = effective_weights(["pickscore", "clip"])  # 2/3, 1/3
    overalls = combine({"pickscore": [80.0, 60.0], "clip": [70.0, 90.0]}, weights)
    assert overalls == pytest.approx([80 * 2 / 3 + 70 / 3, 60 * 2 / 3 + 90 / 3])  # 76.67, 70.0


def test_combine_divides_by_the_weight_total():
    assert combine({"a": [50.0], "b": [100.0]}, {"a": 1.0, "b": 3.0}) == pytest.approx([87.5])


def test_combine_errors():
    with pytest.raises(ValueError, match="same"):
        combine({"clip": [1.0]}, {"clip": 0.5, "vqa": 0.5})
    with pytest.raises(ValueError, match="number of images"):
        combine({"clip": [1.0, 2.0], "vqa": [1.0]}, {"clip": 0.5, "vqa": 0.5})
    with pytest.raises(ValueError, match="0-100"):
        combine({"clip": [101.0]}, {"clip": 1.0})
    with pytest.raises(ValueError, match="weights"):
        combine({"clip": [1.0]}, {"clip": 0.0})
    with pytest.raises(ValueError, match="at least one"):
        combine({}, {})


def test_combine_empty_batch():
    assert combine({"clip": []}, {"clip": 1.0}) == []


def test_rank():
    assert rank([60.0, 90.0, 75.0]) == [3, 1, 2]
    assert rank([70.0, 90.0, 70.0]) == [2, 1, 3]  # tie: lower index first
    assert rank([50.0, 50.0, 50.0]) == [1, 2, 3]
    assert rank([]) == []
    with pytest.raises(ValueError, match="NaN"):
        rank([1.0, float("nan")])


def test_deciding_component():
    weights = {"pickscore": 0.5, "clip": 0.25}
    # pickscore: 0.5 * 10 = 5 vs clip: 0.25 * -30 = -7.5
    assert deciding_component({"pickscore": 80, "clip": 60}, {"pickscore": 70, "clip": 90}, weights) == "pickscore"
    # pickscore: 0.5 * 1 = 0.5 vs clip: 0.25 * 30 = 7.5
    assert deciding_component({"pickscore": 71, "clip": 90}, {"pickscore": 70, "clip": 60}, weights) == "clip"
    # equal contributions (5 and 5): the heavier slot
    assert deciding_component({"pickscore": 60, "clip": 80}, {"pickscore": 50, "clip": 60}, weights) == "pickscore"
    # equal weights and contributions: the slot listed first
    assert deciding_component({"a": 1, "b": 1}, {"a": 0, "b": 0}, {"b": 1.0, "a": 1.0}) == "b"


def test_deciding_component_errors():
    with pytest.raises(ValueError, match="missing"):
        deciding_component({"clip": 1}, {}, {"clip": 1.0})
    with pytest.raises(ValueError, match="weights"):
        deciding_component({}, {}, {})


def test_ensemble_report():
    infos = [
        ScorerInfo(slot="aesthetic", name="technical-quality", stand_in=True),
        ScorerInfo(slot="clip", name="clipscore", model="openai/clip-vit-base-patch32"),
    ]
    report = ensemble_report(infos, {"pickscore": "no weights", "vqa": "no weights"})
    assert report.effective_weights == pytest.approx({"clip": 0.25 / 0.35, "aesthetic": 0.10 / 0.35})
    assert report.missing == {"pickscore": "no weights", "vqa": "no weights"}
    assert [s.name for s in report.scorers] == ["technical-quality", "clipscore"]


def test_ensemble_report_errors():
    info = ScorerInfo(slot="clip", name="clipscore")
    with pytest.raises(ValueError, match="once"):
        ensemble_report([info, info], {})
    with pytest.raises(ValueError, match="missing"):
        ensemble_report([info], {"clip": "no weights"})
    with pytest.raises(ValueError, match="available"):
        ensemble_report([], {"clip": "no weights"})
