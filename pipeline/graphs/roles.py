"""The role of a scene-graph node: the one definition every stage reads (the graph store writes
it as ``nodes/role``, int8, and lists the names in its ``roles`` attribute)."""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    """A node's role in its clip's graph (AVSGS section 3.2): a principal object's box, a context
    box of the principal's key frame, or the clip's one background node."""

    PRINCIPAL = 0
    CONTEXT = 1
    BACKGROUND = 2


NAMES = tuple(r.name.lower() for r in Role)  # ("principal", "context", "background")
