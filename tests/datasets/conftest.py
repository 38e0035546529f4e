import numpy as np
import pytest
import scipy.io

from physioemo.datasets.dreamer import EEG_CHANNELS


@pytest.fixture(scope="session")
def tiny_dreamer_path(tmp_path_factory):
    """2 subjects x 18 clips x 62 s, generated once per session."""
    from physioemo.datasets import make_synthetic_dreamer

    path = tmp_path_factory.mktemp("dreamer") / "tiny.mat"
    return make_synthetic_dreamer(path, n_subjects=2, stimulus_seconds=62, seed=3)


def _score(values):
    # doubles as in DREAMER, unless a test passes uint8 (MATLAB's integer storage)
    values = np.asarray(values)
    return values.reshape(-1, 1).astype(values.dtype if values.dtype == np.uint8 else float)


def build_dreamer_struct(subjects, *, electrodes=EEG_CHANNELS, eeg_sfreq=128, ecg_sfreq=256):
    """Build the DREAMER struct by hand, following dreamer-format.md (not our generator).

    ``subjects`` is a list of dicts with keys eeg_baseline, eeg_stimuli, ecg_baseline,
    ecg_stimuli (lists of (n_times, n_channels) arrays, as in the file), valence, arousal,
    dominance (lists of numbers), age, gender.
    """
    data = np.empty((1, len(subjects)), dtype=object)
    for s, subj in enumerate(subjects):
        n_clips = len(subj["eeg_stimuli"])

        def cell(arrays, n=n_clips):
            c = np.empty((n, 1), dtype=object)
            for j, a in enumerate(arrays):
                c[j, 0] = a
            return c

        data[0, s] = {
            "Age": subj.get("age", "25"), "Gender": subj.get("gender", "female"),
            "EEG": {"baseline": cell(subj["eeg_baseline"]), "stimuli": cell(subj["eeg_stimuli"])},
            "ECG": {"baseline": cell(subj["ecg_baseline"]), "stimuli": cell(subj["ecg_stimuli"])},
            "ScoreValence": _score(subj["valence"]),
            "ScoreArousal": _score(subj["arousal"]),
            "ScoreDominance": _score(subj["dominance"]),
        }
    el = np.empty((1, len(electrodes)), dtype=object)
    el[0, :] = list(electrodes)
    return {"Data": data, "EEG_SamplingRate": eeg_sfreq, "ECG_SamplingRate": ecg_sfreq,
            "EEG_Electrodes": el, "noOfSubjects": len(subjects),
            "noOfVideoSequences": len(subjects[0]["eeg_stimuli"]),
            "Disclaimer": "test", "Provider": "test", "Version": "1", "Acknowledgement": "-"}


def random_subjects(n_subjects=2, lengths=(7700, 7800, 7690), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_subjects):
        out.append({
            "eeg_baseline": [4000 + 20 * rng.standard_normal((7808, 14)) for _ in lengths],
            "eeg_stimuli": [4000 + 20 * rng.standard_normal((m, 14)) for m in lengths],
            "ecg_baseline": [2000 + rng.standard_normal((15616, 2)) for _ in lengths],
            "ecg_stimuli": [2000 + rng.standard_normal((2 * m, 2)) for m in lengths],
            "valence": rng.integers(1, 6, len(lengths)),
            "arousal": rng.integers(1, 6, len(lengths)),
            "dominance": rng.integers(1, 6, len(lengths)),
            "age": "31", "gender": "male",
        })
    return out


def write_dreamer(path, subjects, **kwargs):
    scipy.io.savemat(path, {"DREAMER": build_dreamer_struct(subjects, **kwargs)})
    return path


@pytest.fixture
def mat_builder():
    """Helpers that write DREAMER-layout files by hand with scipy.io.savemat."""
    import types

    return types.SimpleNamespace(random_subjects=random_subjects, write=write_dreamer,
                                 struct=build_dreamer_struct)
