"""The download stage: fetch every candidate clip, cut its window, write the canonical form.

See :mod:`pipeline.download.run` for the flow and ``docs/download.md`` for how to run it on
AudioCaps and MUSIC.
"""
