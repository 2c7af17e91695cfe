"""The auditory-word dictionary of ASIW (AVSGS paper, appendix D).

305 distinct auditory words, each grounded to one of 14 principal objects or to ``background``, with
the frequency the paper prints beside it. ``auditory_words.tsv`` holds the appendix as data; the
misprints it resolves are listed in its ``note`` column and in ``docs/asiw.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from importlib import resources

BACKGROUND = "background"

#: Principal-object classes in the order of the paper's Table 2, then background, with the Visual
#: Genome object names the appendix groups under each, and Table 2's printed total
#: (None: not shown).
CLASSES: dict[str, tuple[tuple[str, ...], int | None]] = {
    "baby": (("baby", "child", "little girl"), 1616),
    "bell": (("bell",), 151),
    "birds": (("bird", "birds", "duck", "ducks"), 2887),
    "camera": (("camera",), 913),
    "clock": (("clock", "clocks", "clock tower", "alarm clocks"), 658),
    "dogs": (("dog", "dogs"), 1407),
    "toilet": (("drain", "toilet", "toilet seat", "toilet bowl"), 838),
    "horse": (("horse", "horses"), 385),
    "man": (("man", "woman", "young man", "people"), 6210),
    "sheep": (("sheep", "goat", "goats", "chicken"), 710),
    "telephone": (("telephone",), 222),
    "trains": (
        ("train", "trains", "train car", "train cars", "passenger train", "train engine"),
        141,
    ),
    "vehicle": (("vehicle", "car", "cars", "truck", "trucks"), 779),
    "water": (("water", "water tank", "water bottle"), 378),
    BACKGROUND: ((), None),
}


@dataclasses.dataclass(frozen=True)
class AuditoryWord:
    entry: int
    word: str
    principal_object: str
    paper_count: int
    note: str


@dataclasses.dataclass(frozen=True)
class AuditoryDictionary:
    """Word -> principal object, with the paper's counts."""

    words: dict[str, AuditoryWord]

    @property
    def classes(self) -> list[str]:
        return list(CLASSES)

    def object_of(self, word: str) -> str:
        return self.words[word].principal_object

    def class_rank(self, cls: str) -> int:
        return list(CLASSES).index(cls)


@functools.cache
def load_dictionary() -> AuditoryDictionary:
    """Load the packaged appendix-D dictionary, checking it is well formed."""
    text = resources.files("pipeline.labels").joinpath("auditory_words.tsv").read_text("utf-8")
    rows = csv.DictReader(
        (line for line in text.splitlines() if not line.startswith("#")), delimiter="\t"
    )
    words: dict[str, AuditoryWord] = {}
    for row in rows:
        entry = AuditoryWord(
            entry=int(row["entry"]),
            word=row["word"],
            principal_object=row["principal_object"],
            paper_count=int(row["paper_count"]),
            note=row["note"] or "",
        )
        if entry.principal_object not in CLASSES:
            raise ValueError(
                f"auditory_words.tsv: {entry.word}: unknown class {entry.principal_object}"
            )
        if entry.word in words:
            raise ValueError(f"auditory_words.tsv: {entry.word} listed twice")
        words[entry.word] = entry
    return AuditoryDictionary(words=words)
