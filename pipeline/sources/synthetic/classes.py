"""The classes of the synthetic world: how each looks, sounds, and is described.

Each class has a distinct procedural sprite (shape, colour, pattern), a General MIDI program of the
soundfont shipped with ``pretty-midi`` (a stand-in sound: GM has bird tweet, telephone ring,
seashore, applause, helicopter, ... but no dog bark), a note pattern, and, for the ``everyday``
flavour, caption phrases that each hold exactly one auditory word of the class's principal object.
"""

from __future__ import annotations

import dataclasses

#: The visible context that makes an object sound: a player sprite overlapping it.
PLAYER = "player"


@dataclasses.dataclass(frozen=True)
class Sound:
    """How a class sounds.

    Args:
        program: General MIDI program (0-based).
        pattern: ``melody`` (random notes in ``register``), ``ticks`` (regular short hits),
            ``ring`` (bursts of fast repeats, then a pause), ``sustain`` (long held notes).
        register: lowest and highest MIDI key.
        note_seconds: shortest and longest note.
    """

    program: int
    pattern: str
    register: tuple[int, int]
    note_seconds: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Look:
    """How a class looks: a shape, an RGB colour and a surface pattern."""

    shape: str
    colour: tuple[int, int, int]
    pattern: str


@dataclasses.dataclass(frozen=True)
class WorldClass:
    name: str
    sound: Sound
    look: Look
    phrases: tuple[str, ...] = ()


def _melody(program, low, high, short=0.25, long=0.7):
    return Sound(program, "melody", (low, high), (short, long))


#: MUSIC's 11 solo instruments (the ``instruments`` flavour).
INSTRUMENTS = {
    c.name: c
    for c in (
        WorldClass("accordion", _melody(21, 55, 79), Look("square", (200, 40, 40), "vstripes")),
        WorldClass("acoustic_guitar", _melody(24, 48, 72), Look("circle", (150, 90, 30), "solid")),
        WorldClass(
            "cello", _melody(42, 36, 60, 0.4, 0.9), Look("ellipse", (110, 50, 20), "hstripes")
        ),
        WorldClass("clarinet", _melody(71, 52, 76), Look("bar", (30, 30, 30), "dots")),
        WorldClass("erhu", _melody(110, 60, 84), Look("diamond", (180, 150, 60), "checker")),
        WorldClass("flute", _melody(73, 67, 91), Look("hbar", (200, 200, 210), "dots")),
        WorldClass("saxophone", _melody(65, 49, 73), Look("triangle", (230, 180, 20), "solid")),
        WorldClass("trumpet", _melody(56, 55, 79), Look("pentagon", (240, 200, 60), "hstripes")),
        WorldClass(
            "tuba", _melody(58, 29, 53, 0.4, 0.9), Look("hexagon", (160, 160, 40), "checker")
        ),
        WorldClass("violin", _melody(40, 55, 88), Look("star", (170, 60, 30), "solid")),
        WorldClass(
            "xylophone", _melody(13, 60, 96, 0.15, 0.4), Look("cross", (60, 120, 200), "vstripes")
        ),
    )
}

#: Everyday classes named by ASIW's principal objects (the ``everyday`` flavour), with GM stand-ins.
EVERYDAY = {
    c.name: c
    for c in (
        WorldClass(
            "bell",
            _melody(14, 60, 84, 0.6, 1.2),
            Look("triangle", (230, 190, 40), "hstripes"),
            ("a bell chiming", "bells chiming loudly", "a church bell chiming"),
        ),
        WorldClass(
            "birds",
            Sound(123, "ring", (72, 88), (0.5, 1.2)),
            Look("diamond", (40, 160, 220), "dots"),
            ("birds chirp", "a bird chirping", "birds squawk", "small birds cheep"),
        ),
        WorldClass(
            "telephone",
            Sound(124, "ring", (64, 76), (1.2, 2.0)),
            Look("square", (200, 40, 40), "checker"),
            ("a telephone ringing", "a phone is ringing", "ringing of a telephone"),
        ),
        WorldClass(
            "clock",
            Sound(115, "ticks", (70, 82), (0.5, 0.5)),
            Look("circle", (240, 240, 240), "cross"),
            ("a clock ticking", "the tick of a clock", "a clock is ticking"),
        ),
        WorldClass(
            "baby",
            _melody(53, 70, 86, 0.4, 1.0),
            Look("ellipse", (250, 170, 190), "solid"),
            ("a baby crying", "a baby cries", "an infant babbling", "a baby is crying"),
        ),
        WorldClass(
            "man",
            Sound(126, "sustain", (55, 67), (1.5, 3.0)),
            Look("hexagon", (90, 60, 160), "vstripes"),
            ("people applaud", "a crowd cheering", "people clapping", "an audience cheer"),
        ),
        WorldClass(
            "vehicle",
            Sound(125, "sustain", (40, 55), (2.0, 4.0)),
            Look("hbar", (60, 60, 70), "checker"),
            ("a car honk", "a vehicle skidding", "a truck driving by", "cars racing"),
        ),
        WorldClass(
            "water",
            Sound(122, "sustain", (50, 70), (2.0, 4.0)),
            Look("ring", (30, 90, 230), "hstripes"),
            ("water splashing", "water trickling", "water is pouring", "a stream flowing"),
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Partner:
    """An object a principal object interacts with (``scenes`` flavour): it decides the sound.

    Args:
        name: the detector class.
        look: how it is drawn (smaller than its principal object, in front of it).
        program, pattern, note_seconds: the General MIDI program, note pattern and note lengths
            of the sound it makes with any principal object (:class:`Sound`).
    """

    name: str
    look: Look
    program: int
    pattern: str
    note_seconds: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Performer:
    """A principal object of the ``scenes`` flavour: it looks the same whatever it plays; its
    register (lowest and highest MIDI key) is its own, its timbre its partner's."""

    name: str
    look: Look
    register: tuple[int, int]
    partners: tuple[str, ...]

    def sound(self, partner: Partner) -> Sound:
        """The variant this object makes with ``partner``."""
        return Sound(partner.program, partner.pattern, self.register, partner.note_seconds)


#: The ``scenes`` flavour's partners: each is also drawn alone, silent, elsewhere in a scene.
PARTNERS = {
    p.name: p
    for p in (
        Partner("trumpet", Look("pentagon", (240, 200, 60), "hstripes"), 56, "melody", (0.25, 0.6)),
        Partner("violin", Look("star", (170, 60, 30), "solid"), 40, "melody", (0.3, 0.8)),
        Partner("microphone", Look("triangle", (40, 40, 40), "dots"), 53, "melody", (0.5, 1.1)),
        Partner("drum", Look("circle", (200, 200, 210), "cross"), 116, "ticks", (0.5, 0.5)),
    )
}

#: The ``scenes`` flavour's principal objects: squares that fill their box (so a partner behind
#: one does not show inside its box), told apart by colour and pattern; three of the four
#: partners are open to each class.
PERFORMERS = {
    p.name: p
    for p in (
        Performer(
            "man",
            Look("square", (90, 60, 160), "vstripes"),
            (45, 64),
            ("trumpet", "violin", "microphone"),
        ),
        Performer(
            "woman",
            Look("square", (200, 60, 90), "checker"),
            (55, 74),
            ("violin", "microphone", "drum"),
        ),
        Performer(
            "child",
            Look("square", (250, 170, 60), "dots"),
            (64, 83),
            ("trumpet", "microphone", "drum"),
        ),
        Performer(
            "robot",
            Look("square", (120, 140, 150), "hstripes"),
            (38, 57),
            ("trumpet", "violin", "drum"),
        ),
    )
}

FLAVOURS = {"everyday": EVERYDAY, "instruments": INSTRUMENTS, "scenes": PERFORMERS}

PLAYER_LOOK = Look("person", (230, 180, 140), "solid")

#: Joins two phrases into one caption; none holds an auditory word.
CONNECTORS = (" and ", " while ", ", followed by ", " as ", " with ")
