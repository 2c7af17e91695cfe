"""Direction-of-motion labels of principal objects: tracking, displacements, classes."""

import numpy as np

from pipeline import motion
from pipeline.graphs.motion_labels import MotionParams, classes, derived_displacements, track


def moving_det(n_frames=8, fps=2.0):
    """A box of class 1 moving right 8 px per frame (half a second), a class-2 box beside its
    path, and from frame 5 on a class-1 box far away (the track must not jump to it)."""
    boxes = np.zeros((n_frames, 3, 4), np.float32)
    labels = np.full((n_frames, 3), -1, np.int16)
    counts = np.zeros(n_frames, np.int16)
    for t in range(n_frames):
        boxes[t, 0] = [10 + 8 * t, 40, 50 + 8 * t, 80]
        boxes[t, 1] = [12 + 8 * t, 42, 52 + 8 * t, 82]  # another class, same place
        labels[t, :2] = [1, 2]
        counts[t] = 2
        if t >= 5:
            boxes[t, 2] = [150, 150, 190, 190]
            labels[t, 2], counts[t] = 1, 3
    return {
        "boxes": boxes,
        "labels": labels,
        "counts": counts,
        "times": (np.arange(n_frames) / fps).astype(np.float32),
    }


def test_a_box_is_tracked_through_its_own_class_only():
    det = moving_det()
    assert track(det, 3, 0, [1], 0.3).tolist() == [0] * 8
    det["labels"][5, 0] = 2  # the object's box is missing in frame 5: the track ends there
    assert track(det, 3, 0, [1], 0.3).tolist() == [0, 0, 0, 0, 0, -1, -1, -1]


def test_displacements_per_window_in_tenths_of_the_frame_per_second():
    det = moving_det()
    box_depth = np.tile(np.array([[2.0, 3.0, 9.0]]), (8, 1))
    box_depth[:, 0] = 2.0 + 0.4 * np.arange(8)  # away from the camera, 0.8 units per second
    disp = derived_displacements(det, track(det, 3, 0, [1], 0.3), box_depth, 160, 4)
    # 16 px per second of a 160 px frame: one tenth of the frame per second
    np.testing.assert_allclose(disp[:3], [[1.0, 0.0, 0.8]] * 3, atol=1e-6)
    # the last window ends past the last frame (3.5 s): from 3.0 s to it, per second
    np.testing.assert_allclose(disp[3], [1.0, 0.0, 0.8], atol=1e-6)
    # a window past the clip's frames has no label
    assert np.isnan(
        derived_displacements(det, track(det, 3, 0, [1], 0.3), box_depth, 160, 5)[4]
    ).all()
    no_depth = derived_displacements(det, track(det, 3, 0, [1], 0.3), None, 160, 4)
    assert np.isnan(no_depth[:, 2]).all() and np.isfinite(no_depth[:, :2]).all()
    lost = track(det, 0, 0, [1], 0.3)
    lost[2:] = -1
    assert np.isnan(derived_displacements(det, lost, box_depth, 160, 4)[1:]).all()


def test_classes_with_thresholds_as_params_and_unknown_windows():
    disp = np.array([[0.5, 0.0, 0.2], [0.7, 0.0, 0.0], [np.nan, 0, 0], [0.0, -2.0, -1.0]])
    out = classes(disp, MotionParams(labels="derived"))
    assert out["direction10"].tolist()[:2] == [0, 1] and out["direction10"][2] == -1
    assert out["direction28"][3] == motion.direction_class(np.array([0, -2.0, -1.0]), 28)
    # a looser threshold makes the first window move, a stricter one the second static
    assert classes(disp, MotionParams("derived", static_uv=0.4))["direction10"][0] != 0
    assert classes(disp, MotionParams("derived", static_uv=0.8))["direction10"][1] == 0
    # the filler classes are never a label
    many = np.random.default_rng(0).normal(size=(500, 3))
    labels = classes(many, MotionParams("derived"))
    assert 9 not in labels["direction10"] and 27 not in labels["direction28"]
