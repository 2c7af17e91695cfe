"""Mine ASIW labels from captions: auditory words -> principal objects per clip.

Every caption is lower-cased, tokenized and lemmatized by spaCy, and each token is matched against
the auditory-word dictionary by the rule ``labels.match``:

- ``surface``: the token's text equals a dictionary word;
- ``lemma``: the token's lemma equals a dictionary word (what the paper counted, with a POS-aware
  spaCy v2 tagger);
- ``either``: the text or the lemma does (a token may then count for two words, e.g. ``crying``
  for ``crying`` and ``cry``; both name the same object).

A clip's principal objects are the non-background objects its captions name, ordered by how many
tokens name them (ties in Table 2 order); clips naming none are not candidates. Clips that come
with a category (MUSIC) are labelled by it instead.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.labels.dictionary import BACKGROUND, CLASSES, AuditoryDictionary
from pipeline.sources.table import SPLITS, Clip

log = logging.getLogger(__name__)

MATCH_RULES = ("surface", "lemma", "either")
BLANK_PREFIX = "blank:"


class LabelsError(PipelineError, RuntimeError):
    """Labels that cannot be mined as configured."""


@dataclasses.dataclass(frozen=True)
class LabelsParams:
    """``labels``.

    Args:
        match: the token-matching rule, ``surface``, ``lemma`` or ``either``.
        nlp: the spaCy pipeline: ``blank:en`` (tokenizer + lookup lemmatizer, works offline) or an
            installed package name such as ``en_core_web_sm``.
        batch_size: captions per ``nlp.pipe`` batch.
    """

    match: Literal["surface", "lemma", "either"]
    nlp: str
    batch_size: int

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size {self.batch_size} must be >= 1")


def load_nlp(name: str):
    """Load a spaCy pipeline for tokenization and lemmatization (parser and NER disabled).

    ``blank:<lang>`` builds a blank pipeline with spaCy's lookup lemmatizer, whose tables come from
    the ``spacy-lookups-data`` package (no download); any other name is loaded as an installed
    package.
    """
    import spacy

    if name.startswith(BLANK_PREFIX):
        nlp = spacy.blank(name[len(BLANK_PREFIX) :])
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        try:
            nlp.initialize()
        except (ValueError, OSError) as err:
            raise LabelsError(
                f"labels.nlp {name!r}: the lookup lemmatizer's tables are missing ({err}); "
                "install spacy-lookups-data (uv sync installs it)"
            ) from err
        return nlp
    try:
        return spacy.load(name, disable=["parser", "ner"])
    except OSError as err:
        raise LabelsError(
            f"labels.nlp {name!r} is not an installed spaCy pipeline; install it (e.g. "
            f"`uv pip install {name}` from spaCy's model releases) or set labels.nlp: blank:en"
        ) from err


def token_matches(text: str, lemma: str, rule: str, vocab: AuditoryDictionary) -> list[str]:
    """The dictionary words one token matches under ``rule`` (0, 1 or 2 words)."""
    words = vocab.words
    if rule == "surface":
        return [text] if text in words else []
    if rule == "lemma":
        return [lemma] if lemma in words else []
    if rule == "either":
        found = [text] if text in words else []
        if lemma != text and lemma in words:
            found.append(lemma)
        return found
    raise LabelsError(f"labels.match {rule!r}: choose from {MATCH_RULES}")


def match_captions(
    captions: Sequence[str], nlp, rule: str, vocab: AuditoryDictionary, batch_size: int = 1000
) -> list[list[str]]:
    """For each caption, the dictionary words its tokens match, in token order."""
    docs = nlp.pipe((c.lower() for c in captions), batch_size=batch_size)
    return [
        [w for tok in doc for w in token_matches(tok.text, tok.lemma_, rule, vocab)]
        for doc in tqdm(docs, total=len(captions), desc="captions", unit="cap", mininterval=2)
    ]


def principal_objects(words: Iterable[str], vocab: AuditoryDictionary) -> list[str]:
    """Non-background objects named by ``words``, by count (desc), ties in Table 2 order."""
    counts = Counter(vocab.object_of(w) for w in words)
    counts.pop(BACKGROUND, None)
    return sorted(counts, key=lambda c: (-counts[c], vocab.class_rank(c)))


def _record(clip: Clip, objects: list[str], words: list[str]) -> dict[str, Any]:
    return {
        "clip_id": clip.clip_id,
        "source": clip.source,
        "youtube_id": clip.youtube_id,
        "url": clip.url,
        "start": clip.start,
        "end": clip.end,
        "split": clip.split,
        "principal_objects": objects,
        "words": words,
    }


def mine_labels(
    clips: Sequence[Clip], params: LabelsParams, vocab: AuditoryDictionary, nlp=None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Label every clip and keep the candidates.

    Returns:
        (manifest records of the candidate clips, sorted by clip_id; the metrics dict of
        ``metrics/labels.json``: per_word, per_class, splits, summary).
    """
    captioned = [c for c in clips if not c.category]
    # The paper's figures describe AudioCaps; beside any other captions they would mislead.
    paper = bool(captioned) and all(c.source == "audiocaps" for c in captioned)
    word_counts: Counter[str] = Counter()
    class_counts: Counter[str] = Counter()
    manifest: list[dict[str, Any]] = []
    if captioned:
        nlp = nlp or load_nlp(params.nlp)
        flat = [cap for clip in captioned for cap in clip.captions]
        matched = iter(match_captions(flat, nlp, params.match, vocab, params.batch_size))
        for clip in captioned:
            words = [w for _ in clip.captions for w in next(matched)]
            word_counts.update(words)
            objects = principal_objects(words, vocab)
            if objects:
                by_count = Counter(words)
                ordered = sorted(by_count, key=lambda w: (-by_count[w], w))
                manifest.append(_record(clip, objects, ordered))
        for word, n in word_counts.items():
            class_counts[vocab.object_of(word)] += n
    for clip in clips:
        if clip.category:
            class_counts.update(clip.category)
            manifest.append(_record(clip, list(clip.category), []))
    manifest.sort(key=lambda r: r["clip_id"])

    per_word = {
        w: {"count": word_counts.get(w, 0), "paper": e.paper_count if paper else None}
        for w, e in sorted(vocab.words.items())
    }
    class_names = list(CLASSES) if captioned else []
    class_names += sorted(set(class_counts) - set(class_names))
    per_class = {
        c: {
            "count": class_counts.get(c, 0),
            "paper": CLASSES[c][1] if c in CLASSES and paper else None,
        }
        for c in class_names
    }
    splits = Counter(r["split"] for r in manifest)
    exact_words = sum(v["count"] == v["paper"] for v in per_word.values()) if paper else None
    compared = [v for v in per_class.values() if v["paper"] is not None]
    metrics = {
        "match": params.match,
        "nlp": params.nlp,
        "per_word": per_word,
        "per_class": per_class,
        "splits": {s: splits.get(s, 0) for s in SPLITS},
        "summary": {
            "clips": len(clips),
            "candidates": len(manifest),
            "words_exact": exact_words,
            "words_abs_error": (
                sum(abs(v["count"] - v["paper"]) for v in per_word.values()) if paper else None
            ),
            "classes_exact": sum(v["count"] == v["paper"] for v in compared) if compared else None,
        },
    }
    if any(c.source == "ave" for c in clips):
        metrics["ave"] = ave_summary(clips)
    log.info(
        "labels: %d of %d clips are candidates %s", len(manifest), len(clips), metrics["splits"]
    )
    return manifest, metrics


def ave_summary(clips: Sequence[Clip]) -> dict[str, Any]:
    """AVE's clips per category and split, and those of the categories that COCO's classes cannot
    show (:data:`pipeline.sources.ave.CATEGORIES`: the COCO detector's graphs skip them)."""
    from pipeline.sources.ave import CATEGORIES, OBJECT_CATEGORY

    counts: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
    for clip in clips:
        if clip.source == "ave":
            counts[OBJECT_CATEGORY[clip.category[0]]][clip.split] += 1
    per_category = {
        c: {"object": CATEGORIES[c][0], "count": sum(n.values()), **{s: n[s] for s in SPLITS}}
        for c, n in counts.items()
    }
    unmapped = {c: v["count"] for c, v in per_category.items() if CATEGORIES[c][1] is None}
    return {
        "per_category": per_category,
        "coco_unmapped": unmapped,
        "coco_unmapped_clips": sum(unmapped.values()),
    }
