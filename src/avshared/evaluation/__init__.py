"""Scoring and comparing systems on the test clips; no Kedro.

- ``scoring``: classification scores, per-class scores, confusion matrices, bootstrap intervals;
- ``statistics``: paired differences (exact McNemar, sign-flip permutation) and Holm's adjustment;
- ``systems``: every trained phase, reference baseline and human rater as weighted prediction rows;
- ``tables``: the comparison, paired, per-fold, per-emotion and confusion tables, for people too;
- ``figures``: every figure (one confusion-matrix drawing), matplotlib only.
"""
