"""The HTML report in a real headless browser (Debian's chromium through chromedriver)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluation.report import key_frames, write_report
from pipeline.evaluation.run import EvaluateParams, evaluate_all
from pipeline.graphs.store import GraphStore

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(
            "the report test needs Debian's chromium and chromium-driver: "
            "`bash tests/install_browser.sh` (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2400"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def test_key_frames_draw_the_graph_boxes(tiny_clips, tmp_path):
    cid = tiny_clips["rows"][0]["clip_id"]
    nodes = {
        "role": np.array([0, 1, 0, 2], np.int8),
        "slot": np.array([0, 0, 1, -1], np.int8),
        "frame": np.array([1, 1, 2, 1], np.int16),
        "time": np.array([0.5, 0.5, 1.0, 0.5], np.float32),
        "box": np.array(
            [[10, 10, 40, 40], [30, 30, 60, 60], [5, 5, 20, 20], [50, 0, 90, 30]], np.float32
        ),
    }
    names = key_frames(tiny_clips["media"] / cid / "video.mp4", nodes, tmp_path / "ex0_a.png")
    assert names == ["ex0_a_slot0.png", "ex0_a_slot1.png"]
    from PIL import Image

    image = np.asarray(Image.open(tmp_path / names[0]).convert("RGB"))
    assert tuple(image[10, 25]) == (230, 40, 40)  # the principal box's top edge, in red


@pytest.mark.slow
def test_report_loads_with_playable_audio(trained, tiny_clips, tmp_path, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    params = EvaluateParams(
        n_pairs=8, batch_size=4, within_clip=False, report_examples=2, threads=1
    )
    result = evaluate_all(
        trained / "model.pt", trained / "graphs.h5", trained / "audio.h5", params, seed=0
    )
    media = tmp_path / "media"  # real videos under the example clips' ids, for the key frames
    video = tiny_clips["media"] / tiny_clips["rows"][0]["clip_id"] / "video.mp4"
    for ex in result["examples"]:
        for cid in ex["pair"]["clip_ids"]:
            (media / cid).mkdir(parents=True, exist_ok=True)
            shutil.copy(video, media / cid / "video.mp4")
    page = write_report(
        tmp_path / "report",
        result["metrics"],
        result["examples"],
        GraphStore(trained / "graphs.h5"),
        media,
        trained / "live",
    )
    browser.get(page.as_uri())
    assert browser.title == "AVSGS evaluation"
    ready = (
        "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)"
    )
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(ready))
    audio = browser.execute_script(
        "return [...document.querySelectorAll('audio')].map(a => "
        "({src: a.currentSrc, state: a.readyState, error: a.error && a.error.code, "
        "duration: a.duration}))"
    )
    assert len(result["examples"]) == 2
    assert len(audio) == 2 * 5  # mixture, two estimates, two references per example
    for a in audio:
        assert a["error"] is None and a["state"] >= 1 and a["duration"] > 1, a
    images = browser.execute_script(
        "return [...document.querySelectorAll('img')]"
        ".map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert {"assets/curves.png", "assets/ex0_spec.png"} <= {src for src, _ in images}
    assert any("slot" in src for src, _ in images)
    assert all(width > 0 for _, width in images), images
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
