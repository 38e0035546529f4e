import numpy as np

from physioemo.datasets import histn_preprocess, load_dreamer
from physioemo.datasets.validation import check_subjects


def test_check_subjects_names_what_evaluate_would_refuse(tmp_path, mat_builder):
    subjects = mat_builder.random_subjects(n_subjects=4, lengths=(7700, 7800))
    subjects[1]["eeg_stimuli"][1][-100, 3] = np.nan          # in the kept 60 s
    subjects[2]["eeg_stimuli"][0] = subjects[2]["eeg_stimuli"][0][:7000]  # 54.7 s
    subjects[2]["ecg_stimuli"][0] = subjects[2]["ecg_stimuli"][0][:14000]
    subjects[3]["eeg_stimuli"][0][5, 2] = np.nan             # before the kept 60 s: harmless
    path = mat_builder.write(tmp_path / "d.mat", subjects)
    dreamer = load_dreamer(path, lazy=True)
    problems = check_subjects(dreamer)
    assert problems[1] is None and problems[4] is None
    assert "subject 2, clip 2 contains 1 NaN" in problems[2]
    assert "subject 3, clip 1 has 7000 samples" in problems[3]
    # the oracle: preprocessing the usable subjects together works, any other fails
    data, _ = histn_preprocess(dreamer, subjects=[0, 3])
    assert np.isfinite(data).all()
    assert check_subjects(dreamer, subjects=[3]) == {4: None}
