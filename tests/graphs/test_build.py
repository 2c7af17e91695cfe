"""Scene-graph construction on hand-built detections: key frames, context by IoU, caps, skips."""

import dataclasses

import numpy as np
import pytest

from pipeline.graphs.build import (
    GraphsParams,
    Skip,
    box_iou,
    build_graph,
    first_box,
    random_crop,
)
from pipeline.graphs.roles import Role
from pipeline.graphs.run import clip_rng

PRINCIPAL, CONTEXT, BACKGROUND = Role.PRINCIPAL, Role.CONTEXT, Role.BACKGROUND

P = GraphsParams(
    max_principal=2,
    iou=0.1,
    min_score=0.3,
    max_context=20,
    background="random_crop",
    crop_min=0.25,
    crop_max=0.75,
    threads=1,
)
IDS = {"a": [1], "b": [2], "either": [1, 2], "c": [3], "none": []}
BOX = [0.0, 0.0, 10.0, 10.0]


def dets(*frames, dim=3):
    """Detections from per-frame lists of (class id, score, box); feature = (t, k, score)."""
    k = max(1, max(len(f) for f in frames))
    t = len(frames)
    out = {
        "boxes": np.zeros((t, k, 4), np.float32),
        "scores": np.zeros((t, k), np.float32),
        "labels": np.full((t, k), -1, np.int16),
        "features": np.zeros((t, k, dim), np.float16),
        "counts": np.array([len(f) for f in frames], np.int16),
        "times": np.arange(t, dtype=np.float32) / 2,
    }
    for i, frame in enumerate(frames):
        for j, (label, score, box) in enumerate(frame):
            out["labels"][i, j], out["scores"][i, j], out["boxes"][i, j] = label, score, box
            out["features"][i, j] = (i, j, score)
    return out


def nodes(graph):
    """(role, slot, frame, box index) per node."""
    return list(
        zip(
            graph["role"].tolist(),
            graph["slot"].tolist(),
            graph["frame"].tolist(),
            graph["box_index"].tolist(),
            strict=True,
        )
    )


def test_key_frame_is_the_frame_of_the_most_confident_box():
    d = dets(
        [(1, 0.8, BOX), (2, 0.99, BOX)],
        [(1, 0.95, BOX)],
        [(1, 0.95, [50, 50, 60, 60])],  # a tie: the earliest frame wins
    )
    g = build_graph(d, ["a"], IDS, P)
    assert nodes(g)[0] == (PRINCIPAL, 0, 1, 0)


@pytest.mark.parametrize(
    ("box", "is_context"),
    [
        ([0, 0, 10, 1], False),  # inside, IoU exactly 0.1: not strictly above
        ([0, 0, 10, 1.2], True),  # inside, IoU 0.12
        ([10, 0, 20, 10], False),  # touching edges: IoU 0
        ([2, 2, 8, 8], True),  # inside: IoU 0.36
        ([-5, -5, 15, 15], True),  # around it: IoU 0.25
        ([30, 30, 40, 40], False),  # apart
    ],
)
def test_context_iou_threshold_edges(box, is_context):
    d = dets([(1, 0.9, BOX), (3, 0.5, box)])
    g = build_graph(d, ["a"], IDS, P)
    assert nodes(g)[1:] == ([(CONTEXT, 0, 0, 1)] if is_context else [])


def test_iou_of_touching_nested_and_empty_boxes():
    iou = box_iou(
        np.array([BOX]), np.array([[0, 0, 10, 1], [10, 0, 20, 10], [2, 2, 8, 8], [3, 3, 3, 3]])
    )
    np.testing.assert_allclose(iou[0], [0.1, 0.0, 0.36, 0.0])
    assert box_iou(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))[0, 0] == 0.0


def test_context_needs_a_score_above_min_score_and_its_own_frame():
    d = dets(
        [(1, 0.9, BOX), (3, 0.3, BOX), (3, 0.31, BOX)],  # 0.3 is not above min_score
        [(3, 0.99, BOX)],  # another frame: never context
    )
    g = build_graph(d, ["a"], IDS, P)
    assert nodes(g) == [(PRINCIPAL, 0, 0, 0), (CONTEXT, 0, 0, 2)]


def test_context_cap_keeps_the_most_confident():
    frame = [(1, 0.9, BOX)] + [(3, s, BOX) for s in (0.4, 0.8, 0.6, 0.7, 0.5)]
    g = build_graph(dets(frame), ["a"], IDS, dataclasses.replace(P, max_context=2))
    assert nodes(g)[1:] == [(CONTEXT, 0, 0, 2), (CONTEXT, 0, 0, 4)]
    g = build_graph(dets(frame), ["a"], IDS, dataclasses.replace(P, max_context=0))
    assert nodes(g) == [(PRINCIPAL, 0, 0, 0)]


def test_a_principal_with_two_candidate_classes_takes_the_best_of_both():
    d = dets([(1, 0.6, BOX)], [(2, 0.7, BOX)])
    assert nodes(build_graph(d, ["either"], IDS, P))[0] == (PRINCIPAL, 0, 1, 0)


def test_two_objects_of_one_class_get_two_boxes_and_are_not_each_others_context():
    far = [20.0, 20.0, 30.0, 30.0]
    d = dets([(1, 0.9, BOX), (1, 0.8, far), (3, 0.5, far)])
    g = build_graph(d, ["a", "either"], IDS, P)
    assert nodes(g) == [(PRINCIPAL, 0, 0, 0), (PRINCIPAL, 1, 0, 1), (CONTEXT, 1, 0, 2)]


def test_an_object_named_twice_takes_two_boxes_of_one_frame():
    far = [20.0, 20.0, 30.0, 30.0]
    # frame 0 has the single best box of class a; frame 1 is the only one that shows two a's
    d = dets([(1, 0.95, BOX)], [(1, 0.9, BOX), (1, 0.7, far)], [(1, 0.6, BOX), (1, 0.5, far)])
    g = build_graph(d, ["a", "a"], IDS, P)
    assert nodes(g) == [(PRINCIPAL, 0, 1, 0), (PRINCIPAL, 1, 1, 1)]
    # no frame shows two: each slot takes its best remaining box, as for two classes
    d = dets([(1, 0.9, BOX)], [(1, 0.8, far)])
    assert nodes(build_graph(d, ["a", "a"], IDS, P)) == [(PRINCIPAL, 0, 0, 0), (PRINCIPAL, 1, 1, 0)]


def test_slots_follow_label_order_and_stop_at_max_principal():
    d = dets([(1, 0.9, BOX), (2, 0.9, [20, 20, 30, 30]), (3, 0.9, [40, 40, 50, 50])])
    g = build_graph(d, ["b", "a", "c"], IDS, P)
    assert [(r, s, k) for r, s, _, k in nodes(g)] == [(PRINCIPAL, 0, 1), (PRINCIPAL, 1, 0)]


def test_a_missing_principal_is_a_recorded_skip():
    d = dets([(1, 0.9, BOX), (2, 0.3, BOX)])  # b only at min_score
    assert build_graph(d, ["a", "b"], IDS, P) == Skip("not_detected", "b")
    assert build_graph(d, ["none"], IDS, P) == Skip("unmapped", "none")
    assert build_graph(d, ["zebra"], IDS, P) == Skip("unmapped", "zebra")
    assert build_graph(dets([]), ["a"], IDS, P) == Skip("not_detected", "a")


def test_background_choices():
    rng = [clip_rng(0, "clip_x") for _ in range(2)]
    a, b = (random_crop(r, 20, 96, 128, P) for r in rng)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])  # deterministic for a seed and clip
    c = random_crop(clip_rng(1, "clip_x"), 20, 96, 128, P)
    assert not np.array_equal(a[1], c[1])
    for seed in range(50):
        t, (x0, y0, x1, y1) = random_crop(clip_rng(seed, "c"), 20, 96, 128, P)
        assert 0 <= t < 20 and 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 96
        assert 0.25 * 128 <= x1 - x0 <= 0.75 * 128 and 0.25 * 96 <= y1 - y0 <= 0.75 * 96
    assert first_box(dets([], [(1, 0.2, BOX)])) == (1, 0)
    assert first_box(dets([], [])) is None
    assert BACKGROUND == 2
