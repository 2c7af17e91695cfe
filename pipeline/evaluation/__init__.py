"""Evaluation: the fixed list of test pairs, whole-clip separation by overlap-add, BSS-eval scores
with the mixture baseline and the ideal-mask ceilings, and the HTML report."""
