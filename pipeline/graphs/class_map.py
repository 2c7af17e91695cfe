"""Which detector classes show each principal object: ``class_map`` in params.

One map per detector vocabulary (``synthetic``, ``coco``, ``visual_genome``); ``class_map.name``
selects the one that fits ``detector.kind``. The graphs stage resolves it against the class names
recorded in the detections store (a map that names none of them stops it), finds each principal
object's boxes by class id, and records the resolved map in the graph store.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pipeline.errors import PipelineError


class ClassMapError(PipelineError, ValueError):
    """A class map that names none of the detector's classes."""


@dataclasses.dataclass(frozen=True)
class ClassMapParams:
    """``class_map``.

    Args:
        name: the map to use: ``synthetic``, ``coco`` or ``visual_genome``; or ``proposals``
            (``detect.backend: proposals``): every object of every map is shown by the one
            class-agnostic ``proposal`` class.
        synthetic, coco, visual_genome: principal object -> detector class names.
    """

    name: Literal["synthetic", "coco", "visual_genome", "proposals"]
    synthetic: dict[str, list[str]]
    coco: dict[str, list[str]]
    visual_genome: dict[str, list[str]]


def resolve(params: ClassMapParams, class_names: list[str]) -> dict[str, Any]:
    """The selected map as class ids of ``class_names``, and the names it could not find.

    Raises:
        ClassMapError: no principal object maps to any of the detector's classes.
    """
    if params.name == "proposals":
        objects = {o for m in ("synthetic", "coco", "visual_genome") for o in getattr(params, m)}
        chosen = {o: ["proposal"] for o in objects}
    else:
        chosen = getattr(params, params.name)
    index = {n: i for i, n in enumerate(class_names)}
    ids = {obj: [index[n] for n in names if n in index] for obj, names in sorted(chosen.items())}
    missing = sorted({n for names in chosen.values() for n in names if n not in index})
    if not any(ids.values()):
        raise ClassMapError(
            f"class_map.{params.name} names none of the detector's classes "
            f"({', '.join(class_names[1:6])}, ...); pick the map of this detector "
            "(class_map.name) or fix its class names"
        )
    return {"name": params.name, "ids": ids, "missing": missing}
