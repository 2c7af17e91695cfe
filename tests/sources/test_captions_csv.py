import pytest

from pipeline.sources.captions_csv import CaptionCsvError, read_caption_csv
from pipeline.sources.user_csv import CsvParams, download_csv, prepare_csv


def _write(tmp_path, text, name="clips.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_groups_captions_per_window(tmp_path):
    path = _write(
        tmp_path,
        "audiocap_id,youtube_id,start_time,caption\n"
        "1,r1nicOVtvkQ,130,A dog barks\n"
        "2,r1nicOVtvkQ,130,Barking and a man talks\n"
        "3,r1nicOVtvkQ,20,Water splashes\n",
    )
    clips = {c.clip_id: c for c in read_caption_csv(path, source="audiocaps", split="val")}
    assert set(clips) == {"r1nicOVtvkQ_130", "r1nicOVtvkQ_20"}
    clip = clips["r1nicOVtvkQ_130"]
    assert clip.captions == ("A dog barks", "Barking and a man talks")
    assert (clip.start, clip.end, clip.split) == (130.0, 140.0, "val")


def test_malformed_rows_are_reported_with_line_numbers(tmp_path):
    path = _write(
        tmp_path,
        "youtube_id,start_time,caption\n"
        "r1nicOVtvkQ,130,fine\n"
        "r1nicOVtvkQ,abc,bad start\n"
        '"../../etc",0,hostile id\n'
        "r1nicOVtvkQ,5\n"
        'UDGBjjwyaqE,20,"a caption\nover two lines"\n'
        "UDGBjjwyaqE,30,\n",
    )
    with pytest.raises(CaptionCsvError) as err:
        read_caption_csv(path, source="csv")
    msg = str(err.value)
    assert "4 malformed row(s)" in msg
    assert f"{path}:3: start_time 'abc' is not a non-negative number" in msg
    assert f"{path}:4: youtube_id '../../etc' is not an 11-character YouTube id" in msg
    assert f"{path}:5: expected 3 fields" in msg
    assert f"{path}:8: empty caption" in msg  # line numbers count the multi-line caption


def test_missing_column_is_named(tmp_path):
    path = _write(tmp_path, "youtube_id,caption\nr1nicOVtvkQ,x\n")
    with pytest.raises(CaptionCsvError, match=r"clips\.csv:1: .*lacks column\(s\) start_time"):
        read_caption_csv(path, source="csv")


def test_user_csv_with_urls_and_splits(tmp_path):
    path = _write(
        tmp_path,
        "url,start_time,end_time,caption,split\n"
        "http://127.0.0.1:8000/my video.mp4,0,4.5,a bell is chiming,test\n"
        "file:///data/b.mp4,1.5,,a baby cries,\n",
        name="mine.csv",
    )
    prov = download_csv(tmp_path / "out", CsvParams(path=str(path)))
    assert prov[0]["name"] == "mine.csv"
    clips = sorted(prepare_csv(tmp_path / "out", CsvParams(path=str(path))), key=lambda c: c.start)
    assert [(c.start, c.end, c.split) for c in clips] == [(0.0, 4.5, "test"), (1.5, 11.5, "train")]
    assert clips[0].clip_id.startswith("my-video-") and clips[0].youtube_id is None
    assert clips[1].clip_id.startswith("b-") and clips[1].clip_id.endswith("_1.5")


def test_user_csv_rejects_ftp_and_a_missing_file(tmp_path):
    path = _write(tmp_path, "url,start_time,caption\nftp://x/y.mp4,0,a dog\n")
    with pytest.raises(CaptionCsvError, match="is not an http"):
        read_caption_csv(path, source="csv")
    from pipeline.sources.fetch import FetchError

    with pytest.raises(FetchError, match="clip list not found; set source.csv.path"):
        download_csv(tmp_path / "raw", CsvParams(path=str(tmp_path / "nope.csv")))
    with pytest.raises(FetchError, match="source.csv.path is null"):
        download_csv(tmp_path / "raw", CsvParams(path=None))
