"""ASMP's direction-of-motion classes (shared/ASMP.md section 4.1)."""

import numpy as np
import pytest

from pipeline.motion import DIRECTIONS_26, OCTANTS, direction_class, is_static


def test_the_static_thresholds_are_the_released_codes():
    disp = np.array([[0.59, -0.59, 0.29], [0.60, 0, 0], [0, -0.6, 0], [0, 0, 0.30], [0, 0, -0.3]])
    assert is_static(disp).tolist() == [True, False, False, False, False]
    assert direction_class(disp[:1], 28).tolist() == [0] and direction_class(disp[:1], 10) == [0]


def test_each_of_the_26_directions_gets_its_class_at_any_speed():
    for scale in (1.0, 3.7):
        assert direction_class(DIRECTIONS_26 * scale, 28).tolist() == list(range(1, 27))
    # the largest cosine: mostly rightwards with a little up is "right" (class 3, (1, 0, 0))
    assert direction_class(np.array([2.0, 0.3, 0.1]), 28) == 3
    assert direction_class(np.array([2.0, 1.9, -1.8]), 28) == 23  # (1, 1, -1)


def test_octants_count_zero_as_positive_and_the_8_class_scheme_has_no_static():
    assert direction_class(OCTANTS * 2.0, 10).tolist() == list(range(1, 9))
    assert direction_class(np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]]), 10).tolist() == [5, 2]
    assert direction_class(OCTANTS * 0.01, 8).tolist() == list(range(8))  # tiny, still an octant
    assert direction_class(np.zeros((2, 4, 3)), 28).shape == (2, 4)


def test_a_bad_scheme_or_shape_is_named():
    with pytest.raises(ValueError, match="one of"):
        direction_class(np.zeros(3), 26)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        direction_class(np.zeros((4, 2)), 28)
