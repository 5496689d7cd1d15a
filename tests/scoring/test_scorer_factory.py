"""Choosing scorers from the backend settings."""

from __future__ import annotations

import pytest

from imageforge.scoring import factory
from imageforge.scoring.consistency import HistogramConsistencyScorer
from imageforge.scoring.factory import OFFLINE_REASON, ScorerSet, build_scorers
from imageforge.scoring.settings import ScorerSettings
from imageforge.scoring.technical import TechnicalQualityScorer


@pytest.mark.parametrize("mode", ["auto", "offline"])
def test_offline_set(mode):
    scorer_set, line = build_scorers(ScorerSettings(scorers=(mode,)))
    assert isinstance(scorer_set, ScorerSet)
    assert [type(s) for s in scorer_set.scorers] == [TechnicalQualityScorer]
    assert isinstance(scorer_set.consistency, HistogramConsistencyScorer)
    if mode == "offline":
        assert scorer_set.missing == {"pickscore": OFFLINE_REASON, "clip": OFFLINE_REASON, "vqa": OFFLINE_REASON}
    else:  # auto with an empty Hugging Face cache says what to pull for each slot
        assert scorer_set.missing == {
            "pickscore": "weights not on disk (`imageforge models pull pickscore`)",
            "clip": "weights not on disk (`imageforge models pull clip-l`)",
            "vqa": "weights not on disk (`imageforge models pull vqa`)",
        }
    assert OFFLINE_REASON == "no weights on disk (offline)"
    [info] = scorer_set.infos()
    assert (info.slot, info.name, info.model, info.stand_in) == (
        "aesthetic",
        "technical-quality",
        "",
        True,
    )
    assert scorer_set.report().effective_weights == {"aesthetic": 1.0}
    assert "\n" not in line
    assert "technical-quality" in line and "histogram-ssim" in line
    assert "pickscore" in line and "clip" in line and "vqa" in line


def test_default_backends_are_auto():
    scorer_set, _ = build_scorers(ScorerSettings())
    assert [s.name for s in scorer_set.scorers] == ["technical-quality"]


def test_explicit_names():
    scorer_set, _ = build_scorers(ScorerSettings(scorers=("technical-quality",)))
    assert [s.name for s in scorer_set.scorers] == ["technical-quality"]
    assert set(scorer_set.missing) == {"pickscore", "clip", "vqa"}
    assert all(reason == "not in the requested scorers" for reason in scorer_set.missing.values())


def test_unknown_and_mixed_names_rejected():
    with pytest.raises(ValueError, match="'pickscore-xl'"):
        build_scorers(ScorerSettings(scorers=("pickscore-xl",)))
    with pytest.raises(ValueError, match="alone"):
        build_scorers(ScorerSettings(scorers=("auto", "technical-quality")))
    with pytest.raises(ValueError, match="at least one"):
        build_scorers(ScorerSettings(scorers=()))


class FakeClipScorer:
    """A registered model scorer, as the real backends will add themselves."""

    name = "clipscore"
    slot = "clip"
    model = "tiny-clip"
    stand_in = False

    def score(self, images, prompt):
        return [50.0 for _ in images]


def test_registered_scorers_join_and_shrink_missing(monkeypatch):
    monkeypatch.setitem(factory.SCORER_FACTORIES, "clipscore", lambda settings, device: FakeClipScorer())
    scorer_set, line = build_scorers(ScorerSettings(scorers=("clipscore", "technical-quality")))
    assert [s.slot for s in scorer_set.scorers] == ["clip", "aesthetic"]
    assert set(scorer_set.missing) == {"pickscore", "vqa"}
    assert scorer_set.report().effective_weights == pytest.approx({"clip": 0.25 / 0.35, "aesthetic": 0.10 / 0.35})
    assert "clipscore for clip" in line


def test_two_scorers_for_one_slot_rejected(monkeypatch):
    monkeypatch.setitem(factory.SCORER_FACTORIES, "other-aesthetic", lambda settings, device: TechnicalQualityScorer())
    with pytest.raises(ValueError, match="aesthetic"):
        build_scorers(ScorerSettings(scorers=("technical-quality", "other-aesthetic")))
