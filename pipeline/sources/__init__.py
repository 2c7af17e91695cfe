"""Clip sources: ``source.name`` selects one (:mod:`pipeline.sources.run`); each writes the one
clip-table schema (:mod:`pipeline.sources.table`)."""
