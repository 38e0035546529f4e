"""Checkpoint loading and prediction, offline (:mod:`.predict`) and live (:mod:`.live`).

Both normalise with the form the checkpoint was trained with
(:mod:`physioemo.datasets.preprocessing`). Importing this package loads NumPy only; torch,
MNE and the model code are imported when a checkpoint is used.
"""
