import pytest

from pipeline.labels.dictionary import load_dictionary
from pipeline.labels.mine import (
    LabelsError,
    LabelsParams,
    load_nlp,
    match_captions,
    mine_labels,
    principal_objects,
)
from pipeline.sources.table import Clip


@pytest.fixture(scope="module")
def nlp():
    return load_nlp("blank:en")


@pytest.fixture(scope="module")
def vocab():
    return load_dictionary()


CAPTIONS = [
    "A baby is crying while a dog was barking",  # crying -> cry (lemma); barking -> bark
    "Birds chirp and Chirping continues",
    "A telephone ringing loudly",  # ringing -> ring (not a word) by lemma
]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("surface", [["crying", "barking"], ["chirp", "chirping"], ["ringing", "loudly"]]),
        ("lemma", [["cry"], ["chirp", "chirp"], ["loudly"]]),
        (
            "either",
            [["crying", "cry", "barking"], ["chirp", "chirping", "chirp"], ["ringing", "loudly"]],
        ),
    ],
)
def test_each_matching_rule(nlp, vocab, rule, expected):
    assert match_captions(CAPTIONS, nlp, rule, vocab) == expected


def test_principal_objects_by_count_then_table2_order(vocab):
    assert principal_objects(["barking", "cry", "crying", "noise"], vocab) == ["baby", "dogs"]
    assert principal_objects(["barking", "cry"], vocab) == ["baby", "dogs"]  # tie: Table 2 order
    assert principal_objects(["noise", "loudly"], vocab) == []


def _clip(cid, split, *captions, category=()):
    source = "music" if category else "audiocaps"
    return Clip(
        cid, source, "r1nicOVtvkQ", None, 0.0, 10.0, split, tuple(captions), tuple(category)
    )


def test_mine_labels_keeps_candidates_and_counts_every_caption(nlp, vocab):
    clips = [
        _clip("a", "val", "a dog barking", "barking dogs", "a baby cries"),
        _clip("b", "train", "loud noise"),  # background only: not a candidate
        _clip("c", "test", "water splashing"),
    ]
    manifest, metrics = mine_labels(clips, LabelsParams("surface", "blank:en", 2), vocab, nlp)
    assert [r["clip_id"] for r in manifest] == ["a", "c"]
    assert manifest[0]["principal_objects"] == ["dogs"]
    assert manifest[0]["words"] == ["barking"]
    assert set(manifest[0]) >= {
        "clip_id",
        "youtube_id",
        "start",
        "split",
        "principal_objects",
        "words",
    }
    assert metrics["splits"] == {"train": 0, "val": 1, "test": 1}
    assert metrics["per_word"]["barking"] == {"count": 2, "paper": 591}
    assert metrics["per_word"]["noise"]["count"] == 1
    assert metrics["per_class"]["dogs"] == {"count": 2, "paper": 1407}
    assert metrics["per_class"]["background"] == {"count": 1, "paper": None}
    assert metrics["summary"]["candidates"] == 2 and metrics["summary"]["clips"] == 3


def test_music_clips_are_labelled_by_category(vocab):
    clips = [
        _clip("m1", "train", category=("flute", "violin")),
        _clip("m2", "test", category=("cello",)),
    ]
    manifest, metrics = mine_labels(clips, LabelsParams("either", "no_such_model", 8), vocab)
    assert [r["principal_objects"] for r in manifest] == [["flute", "violin"], ["cello"]]
    assert metrics["per_class"] == {
        "cello": {"count": 1, "paper": None},
        "flute": {"count": 1, "paper": None},
        "violin": {"count": 1, "paper": None},
    }
    assert metrics["per_word"]["cry"] == {"count": 0, "paper": None}


def test_unknown_spacy_pipeline_says_what_to_do():
    with pytest.raises(LabelsError, match="not an installed spaCy pipeline.*labels.nlp: blank:en"):
        load_nlp("xx_no_such_pipeline")
