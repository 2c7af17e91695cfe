"""AVE: the pinned annotations and split orders (real copies in ../shared/data/ave), fetched from a
local HTTP mirror, checked, and turned into the clip table and labels."""

import shutil

import h5py
import numpy as np
import pytest
import yaml

from pipeline.labels.dictionary import load_dictionary
from pipeline.labels.mine import LabelsParams, mine_labels
from pipeline.sources.ave import CATEGORIES, FILES, AveParams, download_ave, prepare_ave
from pipeline.sources.fetch import FetchError
from pipeline.sources.table import RAW_DIR, read_table, write_table
from tests.conftest import REPO


def _copy(shared_data, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "ave", mirror)
    return mirror


def test_real_files_over_http_give_the_published_splits(shared_data, http_server, tmp_path):
    base = http_server(shared_data / "ave")
    out = tmp_path / "src"
    provenance = download_ave(out, AveParams(mirror=base))
    assert [p["name"] for p in provenance] == list(FILES)
    assert all(p["from"].startswith(base) for p in provenance)
    clips = prepare_ave(out, AveParams())
    sizes = {s: sum(c.split == s for c in clips) for s in ("train", "val", "test")}
    assert sizes == {"train": 3339, "val": 402, "test": 402}
    assert len({c.clip_id for c in clips}) == 4143  # videos annotated twice stay two clips
    first = next(c for c in clips if c.youtube_id == "MH3m4AwEcRY")  # line 2: Church bell, 6-8 s
    assert first.category == ("bell",) and first.segment == (6.0, 8.0)
    assert (first.start, first.end, first.source) == (0.0, 10.0, "ave")
    # the table round-trips the segment; a table without one reads as before
    write_table(out, clips, {"source": "ave"})
    assert read_table(out) == sorted(clips, key=lambda c: c.clip_id)
    # labels: one principal object per category, counted per category and split
    manifest, metrics = mine_labels(
        clips, LabelsParams("either", "blank:en", 100), load_dictionary()
    )
    assert len(manifest) == 4143 and metrics["splits"] == sizes
    per = metrics["ave"]["per_category"]
    assert len(per) == 28 and sum(v["count"] for v in per.values()) == 4143
    assert per["Church bell"]["count"] == 188 and per["Bus"]["count"] == 69
    assert metrics["per_class"]["bell"]["count"] == 188
    assert set(metrics["ave"]["coco_unmapped"]) == {
        "Church bell", "Frying (food)", "Helicopter", "Rodents, rats, mice"
    }  # fmt: skip
    assert metrics["ave"]["coco_unmapped_clips"] == 188 + 182 + 178 + 109


def test_a_pilot_keeps_each_videos_split(shared_data, tmp_path):
    out = tmp_path / "src"
    download_ave(out, AveParams(mirror=str(shared_data / "ave")))
    every = {c.clip_id: c for c in prepare_ave(out, AveParams())}
    pick = ["RUhOCu3LNXM", "-ccciEuH9FE"]  # the second is annotated twice (man, woman)
    kept = prepare_ave(out, AveParams(ids=pick))
    assert {c.clip_id for c in kept} == {"RUhOCu3LNXM_bell", "-ccciEuH9FE_man", "-ccciEuH9FE_woman"}
    assert all(every[c.clip_id] == c for c in kept)


def test_sha256_mismatch_writes_nothing(shared_data, tmp_path):
    mirror = _copy(shared_data, tmp_path)
    with (mirror / "Annotations.txt").open("a") as fh:
        fh.write("Bus&xxxxxxxxxxx&good&0&10\n")
    out = tmp_path / "src"
    with pytest.raises(FetchError, match="Annotations.txt: sha256 .* does not match"):
        download_ave(out, AveParams(mirror=str(mirror)))
    assert not (out / RAW_DIR / "Annotations.txt").exists()


def test_a_missing_mirror_file_is_named_with_the_key(shared_data, tmp_path):
    mirror = _copy(shared_data, tmp_path)
    (mirror / "val_order.h5").unlink()
    with pytest.raises(FetchError, match="val_order.h5: not found.*source.ave.mirror"):
        download_ave(tmp_path / "src", AveParams(mirror=str(mirror)))


def _raw(shared_data, tmp_path):
    """A source folder whose raw files can be edited (past the checksum, as a mirror cannot)."""
    out = tmp_path / "src"
    download_ave(out, AveParams(mirror=str(shared_data / "ave")))
    return out / RAW_DIR


def test_a_malformed_line_is_reported_with_its_number(shared_data, tmp_path):
    raw = _raw(shared_data, tmp_path)
    lines = (raw / "Annotations.txt").read_text().splitlines()
    lines[2] = "Church bell&2An2JMGMbbs&good&0"  # a field short
    (raw / "Annotations.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(FetchError, match=r"Annotations.txt, line 3: .* not category&youtube_id"):
        prepare_ave(raw.parent, AveParams())
    lines[2] = "Church bells&2An2JMGMbbs&good&0&10"
    (raw / "Annotations.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(FetchError, match="line 3: category 'Church bells' is not one of"):
        prepare_ave(raw.parent, AveParams())


def test_an_order_index_out_of_range_or_twice(shared_data, tmp_path):
    raw = _raw(shared_data, tmp_path)
    with h5py.File(raw / "test_order.h5", "r") as f:
        order = f["order"][()]
    with h5py.File(raw / "test_order.h5", "w") as f:
        f["order"] = np.append(order, 4143)
    with pytest.raises(FetchError, match="test_order.h5: index 4143 is outside .* 4143 lines"):
        prepare_ave(raw.parent, AveParams())
    with h5py.File(raw / "test_order.h5", "w") as f:
        f["order"] = np.append(order, 40)  # line 41 is the first of train's order
    with pytest.raises(FetchError, match="line 41 .* both the train and the test order"):
        prepare_ave(raw.parent, AveParams())


def test_the_coco_class_map_holds_aves_objects():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    coco = params["class_map"]["coco"]
    for category, (obj, classes) in CATEGORIES.items():
        if classes is None:
            assert obj not in coco, category  # unmapped: counted, never guessed
        else:
            assert coco[obj] == classes, category
