import hashlib
import shutil
import socket

import pytest

from pipeline.sources import audiocaps
from pipeline.sources.fetch import FetchError, fetch


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_audiocaps_from_http_mirror_checks_sha256(shared_data, http_server, tmp_path):
    base = http_server(shared_data / "audiocaps")
    prov = audiocaps.download_audiocaps(tmp_path, audiocaps.AudiocapsParams(mirror=base))
    raw = tmp_path / "raw"
    assert [p["name"] for p in prov] == ["train.csv", "val.csv", "test.csv"]
    assert all(p["from"].startswith("http://127.0.0.1") for p in prov)
    for name, (_, sha) in audiocaps.FILES.items():
        assert _sha((raw / name).read_bytes()) == sha


def test_sha256_mismatch_writes_nothing(shared_data, http_server, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "audiocaps", mirror)
    with (mirror / "val.csv").open("a") as fh:
        fh.write("1,abcdefghijk,0,an extra row\n")
    raw = tmp_path / "out" / "raw"
    for where in (str(mirror), http_server(mirror)):
        with pytest.raises(FetchError, match=r"val\.csv: sha256 .* does not match the pinned"):
            audiocaps.download_audiocaps(raw.parent, audiocaps.AudiocapsParams(mirror=where))
        assert not (raw / "val.csv").exists()
        assert [p.name for p in raw.iterdir()] == ["train.csv"]  # only what verified


def test_missing_mirror_file_names_it_and_the_key(tmp_path, shared_data):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(shared_data / "audiocaps" / "train.csv", mirror)
    with pytest.raises(FetchError, match=r"mirror/val\.csv: not found .*source\.audiocaps\.mirror"):
        audiocaps.download_audiocaps(
            tmp_path / "out", audiocaps.AudiocapsParams(mirror=str(mirror))
        )


def test_http_404_and_refused_connection(http_server, tmp_path):
    base = http_server(tmp_path)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch("x.csv", f"{base}/x.csv", tmp_path / "out" / "x.csv", sha256=None)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="after 1 attempt"):
        fetch("x", f"http://127.0.0.1:{port}/x", tmp_path / "x", sha256=None, attempts=1)
    assert not (tmp_path / "out").exists()


def test_file_url_and_unsupported_scheme(tmp_path):
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    prov = fetch("a.txt", src.as_uri(), tmp_path / "b.txt", sha256=_sha(b"hello"))
    assert (tmp_path / "b.txt").read_bytes() == b"hello"
    assert prov["sha256"] == _sha(b"hello")
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        fetch("a", "ftp://example.org/a", tmp_path / "c", sha256=None)
