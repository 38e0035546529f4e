"""physioemo: EEG and physiological emotion recognition.

Acquisition from BrainFlow boards to EDF+, Numba signal processing, DREAMER
evaluation with HiSTN, and Optuna hyper-parameter search. The top-level import is
deliberately light: it loads none of torch, numba, brainflow, optuna or mne.
"""

__version__ = "0.1.0"
