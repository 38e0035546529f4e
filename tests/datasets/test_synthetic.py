import numpy as np
import pytest
import scipy.io
from scipy.signal import welch

from physioemo.datasets import load_dreamer, make_synthetic_dreamer
from physioemo.datasets.dreamer import CLIP_MEAN_RATINGS, EEG_CHANNELS
from physioemo.datasets.synthetic import EFFECT_SIZE, _ratings, _SubjectModel
from physioemo.exceptions import ParameterError


def test_deterministic_per_seed_and_prefix_stable(tmp_path, tiny_dreamer_path):
    again = make_synthetic_dreamer(tmp_path / "a.mat", n_subjects=2, stimulus_seconds=62, seed=3)
    one = make_synthetic_dreamer(tmp_path / "b.mat", n_subjects=1, stimulus_seconds=62, seed=3)
    other = make_synthetic_dreamer(tmp_path / "c.mat", n_subjects=1, stimulus_seconds=62, seed=4)
    ref, a = load_dreamer(tiny_dreamer_path), load_dreamer(again)
    b, c = load_dreamer(one), load_dreamer(other)
    for j in (0, 9, 17):
        eq = np.testing.assert_array_equal
        eq(ref.subjects[1].eeg_stimulus[j], a.subjects[1].eeg_stimulus[j])
        eq(ref.subjects[0].ecg_stimulus[j], b.subjects[0].ecg_stimulus[j])
        assert not np.allclose(ref.subjects[0].eeg_stimulus[j], c.subjects[0].eeg_stimulus[j])
    np.testing.assert_array_equal(ref.ratings, a.ratings)


def test_default_lengths_are_dreamer_like(tmp_path):
    p = make_synthetic_dreamer(tmp_path / "l.mat", n_subjects=1, n_clips=18, seed=0)
    secs = np.array([x.shape[1] / 128 for x in load_dreamer(p, lazy=True).subjects[0].eeg_stimulus])
    assert secs.min() == 65.0 and secs.max() == 393.0
    assert 150 < secs.mean() < 250
    raw = scipy.io.loadmat(p)["DREAMER"][0, 0]
    ecg = raw["Data"][0, 0]["ECG"][0, 0]["stimuli"][0, 0][5, 0]
    assert ecg.shape == (2 * int(secs[5] * 128), 2)


def test_ratings_scatter_around_clip_means():
    rng = np.random.default_rng(0)
    r = np.stack([_ratings(_SubjectModel(rng), rng, 18) for _ in range(200)])
    assert r.min() >= 1 and r.max() <= 5 and np.array_equal(r, np.round(r))
    for d, dim in enumerate(("valence", "arousal")):
        assert np.corrcoef(r[..., d].mean(0), CLIP_MEAN_RATINGS[dim])[0, 1] > 0.9
    # individual ratings scatter: not every subject equals the rounded mean
    assert (r[..., 0] != np.round(CLIP_MEAN_RATINGS["valence"])).mean() > 0.3


def _band_log_power(x, lo, hi):
    f, p = welch(x, 128, nperseg=256, axis=-1)
    return np.log(p[..., (f >= lo) & (f < hi)].sum(-1))


def test_planted_valence_and_arousal_effects(tiny_dreamer_path):
    """Frontal alpha asymmetry follows valence with the subject's sign and gain."""
    d = load_dreamer(tiny_dreamer_path)
    fl = [EEG_CHANNELS.index(c) for c in ("AF3", "F7", "F3", "FC5")]
    fr = [EEG_CHANNELS.index(c) for c in ("FC6", "F4", "F8", "AF4")]
    for s, subj in enumerate(d.subjects):
        model = _SubjectModel(np.random.default_rng([3, s]))
        v = subj.ratings[:, 0]
        asym = np.array([_band_log_power(x[fl], 8, 12).mean() - _band_log_power(x[fr], 8, 12).mean()
                         for x in subj.eeg_stimulus])
        slope = np.polyfit((v - 3) / 2, asym, 1)[0]
        # power ratio FL/FR = exp(4 k g e) at the alpha peak; the 1/f floor dilutes it
        expected = 4 * EFFECT_SIZE * model.effect_gain[0]
        assert np.sign(slope) == np.sign(expected)
        assert 0.3 * abs(expected) < abs(slope) < 1.1 * abs(expected)
        base = np.array([_band_log_power(x[fl], 8, 12).mean() - _band_log_power(x[fr], 8, 12).mean()
                         for x in subj.eeg_baseline])
        assert abs(np.polyfit((v - 3) / 2, base, 1)[0]) < 0.25 * abs(expected)


# (band, channels, rating dimension) of every planted effect, from the module docstring
PLANTED = (((8, 12), ("AF3", "F7", "F3", "FC5"), 0), ((8, 12), ("FC6", "F4", "F8", "AF4"), 0),
           ((16, 26), ("F7", "FC5", "T7", "T8", "FC6", "F8"), 1),
           ((8, 12), ("P7", "O1", "O2", "P8"), 1), ((4, 8), ("AF3", "F3", "F4", "AF4"), 2))


def _effect_slopes(d):
    """Slope of each region's stimulus log band power on (rating - 3) / 2, per subject."""
    out = []
    for subj in d.subjects:
        for (lo, hi), names, dim in PLANTED:
            idx = [EEG_CHANNELS.index(c) for c in names]
            lp = np.array([_band_log_power(x[idx], lo, hi).mean() for x in subj.eeg_stimulus])
            out.append(np.polyfit((subj.ratings[:, dim] - 3) / 2, lp, 1)[0])
    return np.abs(out)


def test_effect_size_zero_makes_band_power_independent_of_ratings(tmp_path,
                                                                   tiny_dreamer_path):
    off = load_dreamer(make_synthetic_dreamer(tmp_path / "off.mat", n_subjects=2,
                                              stimulus_seconds=62, seed=3, effect_size=0.0))
    on = load_dreamer(tiny_dreamer_path)  # the same arguments with the default effect
    # the same subjects and ratings (the first clip's baseline is drawn before any effect)
    np.testing.assert_array_equal(off.ratings, on.ratings)
    np.testing.assert_array_equal(off.subjects[1].eeg_baseline[0], on.subjects[1].eeg_baseline[0])
    assert not np.allclose(off.subjects[1].eeg_stimulus[0], on.subjects[1].eeg_stimulus[0])
    slopes_on, slopes_off = _effect_slopes(on), _effect_slopes(off)
    # with the effect every region's power moves with the rating (2 k |g| >= 0.72 per unit
    # at the peak, diluted by the 1/f floor); without it the slopes are estimation noise
    assert slopes_on.min() > 0.2
    assert slopes_off.max() < 0.15 and slopes_off.mean() < 0.25 * slopes_on.mean()
    # and the same regressions on the baselines (never affected) have the same spread
    base = np.abs([np.polyfit((subj.ratings[:, dim] - 3) / 2, np.array(
        [_band_log_power(x[[EEG_CHANNELS.index(c) for c in names]], lo, hi).mean()
         for x in subj.eeg_baseline]), 1)[0]
        for subj in off.subjects for (lo, hi), names, dim in PLANTED])
    assert slopes_off.mean() < 2.5 * base.mean()


def test_bad_arguments(tmp_path):
    with pytest.raises(ParameterError, match="n_subjects=0 is out of range"):
        make_synthetic_dreamer(tmp_path / "x.mat", n_subjects=0)
    with pytest.raises(ParameterError, match="stimulus_seconds=0.5 is out of range"):
        make_synthetic_dreamer(tmp_path / "x.mat", stimulus_seconds=0.5)
    with pytest.raises(ParameterError, match="effect_size=-0.1 is out of range"):
        make_synthetic_dreamer(tmp_path / "x.mat", effect_size=-0.1)
