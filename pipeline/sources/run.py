"""The source stage: a registry mapping ``source.name`` to a ``download_x`` / ``prepare_x`` pair.

``download`` fetches a source's raw metadata into ``<out>/raw``; ``prepare`` turns it into clips of
the one clip-table schema (:mod:`pipeline.sources.table`). Each source's settings live in the params
section of the same name (``source.audiocaps``, ``source.music``, ...).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pipeline.params import BaseParams
from pipeline.sources.audiocaps import AudiocapsParams, download_audiocaps, prepare_audiocaps
from pipeline.sources.ave import AveParams, download_ave, prepare_ave
from pipeline.sources.music import MusicParams, download_music, prepare_music
from pipeline.sources.synthetic import SyntheticParams, download_synthetic, prepare_synthetic
from pipeline.sources.table import Clip, write_table
from pipeline.sources.user_csv import CsvParams, download_csv, prepare_csv

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Source:
    """A registered clip source."""

    #: ``download(target_dir, settings, base)``: fetch or make the raw files; returns provenance.
    download: Callable[[Path, Any, BaseParams], list[dict[str, str]]]
    #: ``prepare(target_dir, settings, base)``: the clips of the table.
    prepare: Callable[[Path, Any, BaseParams], list[Clip]]


SOURCES: dict[str, Source] = {
    "audiocaps": Source(download_audiocaps, prepare_audiocaps),
    "music": Source(download_music, prepare_music),
    "ave": Source(download_ave, prepare_ave),
    "csv": Source(download_csv, prepare_csv),
    "synthetic": Source(download_synthetic, prepare_synthetic),
}


@dataclasses.dataclass(frozen=True)
class SourceParams:
    """``source``: ``name`` selects the entry of :data:`SOURCES`; its settings are the section of
    the same name."""

    name: Literal["synthetic", "audiocaps", "music", "ave", "csv"]
    synthetic: SyntheticParams
    audiocaps: AudiocapsParams
    music: MusicParams
    csv: CsvParams
    ave: AveParams = AveParams()


def build_source(params: SourceParams, base: BaseParams, out_dir: str | Path) -> dict[str, Any]:
    """Run the selected source into ``out_dir``: raw files under ``raw/``, then the clip table.

    Returns:
        the table's ``meta.json`` content.
    """
    out_dir = Path(out_dir)
    source = SOURCES[params.name]
    settings = getattr(params, params.name)
    provenance = source.download(out_dir, settings, base)
    clips = source.prepare(out_dir, settings, base)
    meta = write_table(
        out_dir,
        clips,
        {"source": params.name, "params": dataclasses.asdict(settings), "files": provenance},
    )
    log.info("source %s: %d clips %s", params.name, meta["n_clips"], meta["splits"])
    return meta
