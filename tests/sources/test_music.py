import pytest

from pipeline.params import BaseParams, ParamsError, parse
from pipeline.sources.music import MusicParams, download_music, prepare_music


def _params(**kw):
    return MusicParams(
        **{
            "mirror": None,
            "lists": ("solo", "duet"),
            "val_fraction": 0.1,
            "test_fraction": 0.2,
            **kw,
        }
    )


def test_music_lists_split_by_video_and_seeded(shared_data, tmp_path):
    params = _params(mirror=str(shared_data / "music"))
    download_music(tmp_path, params)
    clips = prepare_music(tmp_path, params, BaseParams(seed=0, sample_rate=11025))
    assert len(clips) == 536 + 149  # 536 solo + 149 duet videos
    assert len({c.youtube_id for c in clips}) == len(clips)
    assert all(c.end is None and c.source == "music" for c in clips)
    duet = next(c for c in clips if len(c.category) == 2)
    assert set(duet.category) <= {
        "flute",
        "violin",
        "saxophone",
        "acoustic_guitar",
        "trumpet",
        "xylophone",
        "tuba",
        "cello",
        "clarinet",
    }
    tests = [c for c in clips if c.split == "test" and c.category == ("cello",)]
    assert len(tests) == round(57 * 0.2)  # stratified per category
    again = prepare_music(tmp_path, params, BaseParams(seed=0, sample_rate=11025))
    other = prepare_music(tmp_path, params, BaseParams(seed=1, sample_rate=11025))
    assert [c.split for c in again] == [c.split for c in clips]
    assert [c.split for c in other] != [c.split for c in clips]


def test_music_params_are_checked():
    with pytest.raises(ParamsError, match=r"source\.music: lists \['trio'\]: choose from"):
        parse(
            MusicParams,
            {"mirror": None, "lists": ["trio"], "val_fraction": 0.1, "test_fraction": 0.1},
            "source.music",
        )
    with pytest.raises(ParamsError, match="sum below 1"):
        parse(
            MusicParams,
            {"mirror": None, "lists": ["solo"], "val_fraction": 0.5, "test_fraction": 0.5},
            "source.music",
        )
