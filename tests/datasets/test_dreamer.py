import numpy as np
import pytest
import scipy.io

from physioemo.datasets import DREAMER, histn_preprocess, load_dreamer
from physioemo.exceptions import DataError, ParameterError


def test_constants_follow_the_spec():
    assert DREAMER.EEG_CHANNELS == ("AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8",
                                    "T8", "FC6", "F4", "F8", "AF4")
    assert (DREAMER.EEG_SFREQ, DREAMER.ECG_SFREQ, DREAMER.N_CLIPS) == (128, 256, 18)
    assert DREAMER.BASELINE_MIDDLE == (3264, 4544)
    assert DREAMER.BASELINE_MIDDLE[1] - DREAMER.BASELINE_MIDDLE[0] == 10 * 128
    # the middle 10 s of the 61-s baseline: 25.5 s on each side
    assert DREAMER.BASELINE_MIDDLE[0] == DREAMER.BASELINE_SAMPLES - DREAMER.BASELINE_MIDDLE[1]
    assert DREAMER.STIMULUS_SAMPLES == 7680 and DREAMER.BASELINE_SAMPLES == 7808
    assert DREAMER.DIMENSIONS == ("valence", "arousal", "dominance")


@pytest.mark.parametrize("lazy", [False, True])
def test_loader_reads_independently_written_file(tmp_path, mat_builder, lazy):
    subjects = mat_builder.random_subjects()
    path = mat_builder.write(tmp_path / "hand.mat", subjects)
    # the documented access paths hold on this file, in both loadmat styles ...
    m = scipy.io.loadmat(path)
    ref = m["DREAMER"][0, 0]["Data"][0, 1]["EEG"][0, 0]["stimuli"][0, 0][2, 0]
    np.testing.assert_array_equal(ref, subjects[1]["eeg_stimuli"][2])
    m2 = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    np.testing.assert_array_equal(m2["DREAMER"].Data[1].EEG.stimuli[2], ref)
    # ... and the loader returns exactly those samples, channels first
    d = load_dreamer(path, lazy=lazy)
    assert d.n_subjects == 2 and d.n_clips == 3 and d.lazy == lazy
    assert d.eeg_channels == DREAMER.EEG_CHANNELS
    assert (d.eeg_sfreq, d.ecg_sfreq) == (128, 256)
    for s, subj in enumerate(d.subjects):
        for j in range(3):
            np.testing.assert_array_equal(subj.eeg_stimulus[j], subjects[s]["eeg_stimuli"][j].T)
            np.testing.assert_array_equal(subj.eeg_baseline[j], subjects[s]["eeg_baseline"][j].T)
            np.testing.assert_array_equal(subj.ecg_stimulus[j], subjects[s]["ecg_stimuli"][j].T)
            np.testing.assert_array_equal(subj.ecg_baseline[j], subjects[s]["ecg_baseline"][j].T)
        expected = np.column_stack([subjects[s][k] for k in ("valence", "arousal", "dominance")])
        np.testing.assert_array_equal(subj.ratings, expected)
        assert subj.ratings.dtype == np.int64
        assert (subj.age, subj.gender) == ("31", "male")
    assert d.subjects[0].eeg_stimulus[1].shape == (14, 7800)
    assert d.subjects[0].ecg_stimulus[1].shape == (2, 15600)


def test_generator_round_trip(tiny_dreamer_path):
    d = load_dreamer(tiny_dreamer_path)
    lazy = load_dreamer(tiny_dreamer_path, lazy=True)
    raw = scipy.io.loadmat(tiny_dreamer_path, squeeze_me=True, struct_as_record=False)
    top = raw["DREAMER"]
    assert top.noOfSubjects == 2 and top.noOfVideoSequences == 18
    assert tuple(top.EEG_Electrodes) == DREAMER.EEG_CHANNELS
    assert d.n_subjects == 2 and d.n_clips == 18
    for s in range(2):
        subj, raw_s = d.subjects[s], top.Data[s]
        np.testing.assert_array_equal(subj.ratings[:, 0], raw_s.ScoreValence)
        np.testing.assert_array_equal(subj.ratings[:, 2], raw_s.ScoreDominance)
        for j in (0, 17):
            assert subj.eeg_stimulus[j].shape == (14, 62 * 128)
            assert subj.ecg_stimulus[j].shape == (2, 62 * 256)
            assert subj.eeg_baseline[j].shape == (14, 7808)
            np.testing.assert_array_equal(subj.eeg_stimulus[j], raw_s.EEG.stimuli[j].T)
            np.testing.assert_array_equal(subj.ecg_baseline[j], raw_s.ECG.baseline[j].T)
            np.testing.assert_array_equal(lazy.subjects[s].eeg_stimulus[j], subj.eeg_stimulus[j])
            np.testing.assert_array_equal(lazy.subjects[s].ecg_stimulus[j], subj.ecg_stimulus[j])
        np.testing.assert_array_equal(lazy.subjects[s].ratings, subj.ratings)
        assert (lazy.subjects[s].age, lazy.subjects[s].gender) == (subj.age, subj.gender)
    # Emotiv-like DC offsets of thousands of units
    assert 3500 < d.subjects[0].eeg_stimulus[0].mean() < 5000


def test_lazy_arrays_are_read_only_memory_maps(tiny_dreamer_path):
    d = load_dreamer(tiny_dreamer_path, lazy=True)
    x = d.subjects[1].eeg_stimulus[4]
    bases, b = [], x
    while b is not None:
        bases.append(b)
        b = getattr(b, "base", None)
    assert any(isinstance(b, (np.memmap, __import__("mmap").mmap)) for b in bases)
    assert not x.flags.writeable


def test_path_from_environment(tiny_dreamer_path, monkeypatch):
    monkeypatch.setenv("PHYSIOEMO_DREAMER_PATH", str(tiny_dreamer_path))
    assert load_dreamer().path == tiny_dreamer_path


# ----------------------------------------------------------------------------- errors

def test_missing_file_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PHYSIOEMO_DREAMER_PATH", raising=False)
    with pytest.raises(DataError, match=r"not found.*--dreamer PATH.*PHYSIOEMO_DREAMER_PATH"):
        load_dreamer(tmp_path / "DREAMER.mat")
    with pytest.raises(ParameterError, match=r"no DREAMER file given.*--dreamer.*PHYSIOEMO_DRE"):
        load_dreamer()


def test_not_a_matlab_file(tmp_path):
    p = tmp_path / "x.mat"
    p.write_text("subject,clip\n1,2\n" * 20)
    with pytest.raises(DataError, match="is not a MATLAB file.*no MATLAB 5.0 header"):
        load_dreamer(p)
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(DataError, match="is not a MATLAB file: it is empty"):
        load_dreamer(tmp_path / "empty.mat")


@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_file(tmp_path, tiny_dreamer_path, lazy):
    p = tmp_path / "cut.mat"
    raw = tiny_dreamer_path.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"truncated.*needs \d+ bytes but the file has"):
        load_dreamer(p, lazy=lazy)
    p.write_bytes(raw[:128])
    with pytest.raises(DataError, match="truncated: it holds only the 128-byte MATLAB header"):
        load_dreamer(p, lazy=lazy)


def test_v73_hdf5_is_rejected_with_conversion_hint(tmp_path):
    import h5py

    p = tmp_path / "v73.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        f["DREAMER/EEG_SamplingRate"] = 128.0
    with open(p, "r+b") as f:  # MATLAB's 128-byte text header lives in the user block
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" "))
    with pytest.raises(DataError, match=r"v7\.3 \(HDF5\).*save\('DREAMER_v7\.mat', 'DREAMER', "
                                        r"'-v7'\)"):
        load_dreamer(p)


@pytest.mark.parametrize("lazy", [False, True])
def test_missing_field_is_named(tmp_path, mat_builder, lazy):
    subjects = mat_builder.random_subjects(lengths=(7700,))
    struct = mat_builder.struct(subjects)
    del struct["Data"][0, 1]["ScoreArousal"]
    scipy.io.savemat(tmp_path / "m.mat", {"DREAMER": struct})
    with pytest.raises(DataError, match=r"DREAMER.Data\{2\} \(subject 2\) has no field "
                                        r"'ScoreArousal'"):
        load_dreamer(tmp_path / "m.mat", lazy=lazy)
    del struct["EEG_Electrodes"]
    scipy.io.savemat(tmp_path / "m.mat", {"DREAMER": struct})
    with pytest.raises(DataError, match="DREAMER has no field 'EEG_Electrodes'"):
        load_dreamer(tmp_path / "m.mat", lazy=lazy)
    scipy.io.savemat(tmp_path / "other.mat", {"X": np.zeros(3)})
    with pytest.raises(DataError, match="no variable 'DREAMER'"):
        load_dreamer(tmp_path / "other.mat", lazy=lazy)


@pytest.mark.parametrize("lazy", [False, True])
def test_wrong_shapes_name_subject_and_clip(tmp_path, mat_builder, lazy):
    subjects = mat_builder.random_subjects()
    subjects[1]["eeg_stimuli"][2] = subjects[1]["eeg_stimuli"][2][:, :13]
    mat_builder.write(tmp_path / "a.mat", subjects)
    with pytest.raises(DataError, match=r"EEG.stimuli\{3\} \(subject 2, clip 3\) has shape "
                                        r"\(7690, 13\); expected \(n_times, 14\)"):
        load_dreamer(tmp_path / "a.mat", lazy=lazy)
    subjects = mat_builder.random_subjects()
    subjects[0]["ecg_stimuli"][1] = subjects[0]["ecg_stimuli"][1][:-3]
    mat_builder.write(tmp_path / "b.mat", subjects)
    with pytest.raises(DataError, match=r"subject 1, clip 2\) has shape \(15597, 2\); expected "
                                        r"\(15600, 2\)"):
        load_dreamer(tmp_path / "b.mat", lazy=lazy)
    subjects = mat_builder.random_subjects()
    subjects[0]["eeg_baseline"][0] = subjects[0]["eeg_baseline"][0][:7000]
    mat_builder.write(tmp_path / "c.mat", subjects)
    with pytest.raises(DataError, match=r"baseline\{1\} \(subject 1, clip 1\) has shape "
                                        r"\(7000, 14\); expected \(7808, 14\)"):
        load_dreamer(tmp_path / "c.mat", lazy=lazy)
    subjects = mat_builder.random_subjects()
    subjects[1]["valence"] = subjects[1]["valence"][:2]
    mat_builder.write(tmp_path / "d.mat", subjects)
    with pytest.raises(DataError, match=r"ScoreValence holds 2 ratings; expected one per clip"):
        load_dreamer(tmp_path / "d.mat", lazy=lazy)


def test_wrong_electrodes_and_rates(tmp_path, mat_builder):
    subjects = mat_builder.random_subjects(lengths=(7700,))
    swapped = list(DREAMER.EEG_CHANNELS)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    mat_builder.write(tmp_path / "e.mat", subjects, electrodes=swapped)
    with pytest.raises(DataError, match="EEG_Electrodes is .*'F7', 'AF3'.*expected"):
        load_dreamer(tmp_path / "e.mat")
    mat_builder.write(tmp_path / "r.mat", subjects, eeg_sfreq=256)
    with pytest.raises(DataError, match="EEG 256 Hz and ECG 256 Hz; expected 128 and 256"):
        load_dreamer(tmp_path / "r.mat")


@pytest.mark.parametrize("bad", [0, 6, 2.5, np.nan])
def test_ratings_outside_1_to_5(tmp_path, mat_builder, bad):
    subjects = mat_builder.random_subjects()
    subjects[0]["arousal"] = np.array([3, bad, 4], dtype=float)
    mat_builder.write(tmp_path / "r.mat", subjects)
    with pytest.raises(DataError, match=r"ScoreArousal: subject 1, clip 2 has rating .*must "
                                        r"be integers 1\.\.5"):
        load_dreamer(tmp_path / "r.mat", lazy=True)


def test_nan_samples_name_subject_and_clip(tmp_path, mat_builder):
    subjects = mat_builder.random_subjects()
    subjects[1]["eeg_stimuli"][2][100, 5] = np.nan
    p = mat_builder.write(tmp_path / "n.mat", subjects)
    with pytest.raises(DataError, match=r"EEG stimulus of subject 2, clip 3 contains 1 NaN.*"
                                        r"channel 5, sample 100"):
        load_dreamer(p)
    # lazy loading defers the check to the samples actually used
    d = load_dreamer(p, lazy=True)
    with pytest.raises(DataError, match="EEG stimulus of subject 2, clip 3 contains 1 NaN"):
        histn_preprocess(d)
    subjects = mat_builder.random_subjects()
    subjects[0]["ecg_baseline"][1][7, 1] = np.inf
    mat_builder.write(tmp_path / "n2.mat", subjects)
    with pytest.raises(DataError, match=r"ECG baseline of subject 1, clip 2 contains 1 NaN or "
                                        "infinite"):
        load_dreamer(tmp_path / "n2.mat")


# ----------------------------------------------------------------------------- preprocessing

def _reference_histn(stimulus, baseline):
    """histn-spec section 1 written out directly (float64)."""
    seg = stimulus[:, -7680:]
    mid = baseline[:, 3264:4544]
    mu = mid.mean(axis=1)[:, None]
    sd = np.sqrt(((mid - mu) ** 2).mean(axis=1))[:, None]
    z = (seg - mu) / sd
    return z / np.abs(z).max(axis=1)[:, None]


def test_histn_preprocess_matches_spec(tiny_dreamer_path):
    d = load_dreamer(tiny_dreamer_path)
    data, labels = histn_preprocess(d)
    assert data.shape == (2, 18, 14, 7680) and data.dtype == np.float32
    assert labels.shape == (2, 18, 3) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, d.ratings - 1)
    for s in range(2):
        for j in range(18):
            ref = _reference_histn(d.subjects[s].eeg_stimulus[j], d.subjects[s].eeg_baseline[j])
            np.testing.assert_array_equal(data[s, j], ref.astype(np.float32))
    np.testing.assert_allclose(np.abs(data).max(axis=-1), 1.0)
    sub, sub_labels = histn_preprocess(d, subjects=[1])
    np.testing.assert_array_equal(sub[0], data[1])
    np.testing.assert_array_equal(sub_labels[0], labels[1])


def test_histn_preprocess_on_hand_written_file(tmp_path, mat_builder):
    subjects = mat_builder.random_subjects()
    p = mat_builder.write(tmp_path / "h.mat", subjects)
    data, _ = histn_preprocess(load_dreamer(p, lazy=True))
    for s in range(2):
        for j in range(3):
            ref = _reference_histn(subjects[s]["eeg_stimuli"][j].T,
                                   subjects[s]["eeg_baseline"][j].T)
            np.testing.assert_allclose(data[s, j], ref, rtol=1e-6, atol=1e-7)


def test_histn_preprocess_options(tiny_dreamer_path):
    from scipy.signal import butter, sosfiltfilt

    d = load_dreamer(tiny_dreamer_path)
    x = d.subjects[0].eeg_stimulus[3]
    raw, _ = histn_preprocess(d, subjects=[0], normalization="none")
    np.testing.assert_array_equal(raw[0, 3], x[:, -7680:].astype(np.float32))
    own, _ = histn_preprocess(d, subjects=[0], normalization="stimulus-zscore")
    z = (x[:, -7680:] - x[:, -7680:].mean(1, keepdims=True)) / x[:, -7680:].std(1, keepdims=True)
    np.testing.assert_allclose(own[0, 3], z / np.abs(z).max(1, keepdims=True), atol=1e-6)
    filt, _ = histn_preprocess(d, subjects=[0], l_freq=1.0, h_freq=40.0)
    sos = butter(4, [1.0, 40.0], btype="bandpass", fs=128, output="sos")
    ref = _reference_histn(sosfiltfilt(sos, x), sosfiltfilt(sos, d.subjects[0].eeg_baseline[3]))
    np.testing.assert_allclose(filt[0, 3], ref, atol=2e-6)
    with pytest.raises(ParameterError, match="normalization='minmax' is not a valid option"):
        histn_preprocess(d, normalization="minmax")
    with pytest.raises(ParameterError, match=r"subjects=\[2\] must be non-empty 0-based indices "
                                             r"in 0\.\.1"):
        histn_preprocess(d, subjects=[2])
    with pytest.raises(ParameterError, match="h_freq=70.0 must be below Nyquist"):
        histn_preprocess(d, l_freq=1.0, h_freq=70.0)


def test_histn_preprocess_rejects_short_clips_and_flat_channels(tmp_path, mat_builder):
    subjects = mat_builder.random_subjects(lengths=(7700, 7000))
    d = load_dreamer(mat_builder.write(tmp_path / "s.mat", subjects))
    with pytest.raises(DataError, match=r"subject 1, clip 2 has 7000 samples; HiSTN keeps the "
                                        r"last 7680"):
        histn_preprocess(d)
    subjects = mat_builder.random_subjects(lengths=(7700,))
    subjects[1]["eeg_baseline"][0][:, 6] = 4000.0
    d = load_dreamer(mat_builder.write(tmp_path / "f.mat", subjects))
    with pytest.raises(DataError, match="channel O1 of subject 2, clip 1 is flat"):
        histn_preprocess(d)


def test_compressed_file_is_read_eagerly_even_when_lazy_is_asked(tmp_path, mat_builder):
    subjects = mat_builder.random_subjects(lengths=(7700,))
    p = tmp_path / "z.mat"
    scipy.io.savemat(p, {"DREAMER": mat_builder.struct(subjects)}, do_compression=True)
    d = load_dreamer(p, lazy=True)
    assert d.lazy is False
    np.testing.assert_array_equal(d.subjects[1].eeg_stimulus[0], subjects[1]["eeg_stimuli"][0].T)
    np.testing.assert_array_equal(d.subjects[0].ratings[:, 1], subjects[0]["arousal"])


def test_integer_typed_storage_is_converted(tmp_path, mat_builder):
    """MATLAB may store integer-valued doubles with a smaller integer type."""
    subjects = mat_builder.random_subjects(lengths=(7700,))
    subjects[0]["eeg_stimuli"][0] = np.round(subjects[0]["eeg_stimuli"][0]).astype(np.int16)
    subjects[0]["valence"] = np.asarray(subjects[0]["valence"], dtype=np.uint8)
    p = mat_builder.write(tmp_path / "i.mat", subjects)
    for lazy in (False, True):
        d = load_dreamer(p, lazy=lazy)
        x = d.subjects[0].eeg_stimulus[0]
        assert x.dtype == np.float64
        np.testing.assert_array_equal(x, subjects[0]["eeg_stimuli"][0].T.astype(float))
        np.testing.assert_array_equal(d.subjects[0].ratings[:, 0], subjects[0]["valence"])


def test_histn_preprocess_causal_form(tiny_dreamer_path):
    d = load_dreamer(tiny_dreamer_path)
    data, _ = histn_preprocess(d, subjects=[1], normalization="causal")
    paper, _ = histn_preprocess(d, subjects=[1], normalization="baseline-zscore")
    np.testing.assert_array_equal(paper, histn_preprocess(d, subjects=[1])[0])
    for j in (0, 7):
        stim, base = d.subjects[1].eeg_stimulus[j], d.subjects[1].eeg_baseline[j]
        mid = base[:, 3264:4544]
        mu, sd = mid.mean(1, keepdims=True), mid.std(1, keepdims=True)
        scale = np.abs((mid - mu) / sd).max(1, keepdims=True)
        ref = (stim[:, -7680:] - mu) / sd / scale
        np.testing.assert_allclose(data[0, j], ref, rtol=1e-6, atol=1e-6)
        # the paper form is the same signal rescaled per channel by another constant
        ratio = data[0, j] / paper[0, j]
        np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-4)
