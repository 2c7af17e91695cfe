"""AVSGS pipeline: ASIW from captions, detections, scene graphs and the AVSGS separator."""
