"""A seeded stand-in for DREAMER.mat with exactly the same layout.

:func:`make_synthetic_dreamer` writes a MATLAB v5 file that :func:`scipy.io.loadmat` (and
therefore :func:`physioemo.datasets.load_dreamer`) sees exactly as the real
``DREAMER.mat`` (see ``dreamer-format.md``): a 1x1 struct ``DREAMER`` with ``Data`` (1 x
n_subjects cell of structs with ``Age``, ``Gender``, ``EEG``/``ECG`` structs holding
n_clips x 1 cells ``baseline`` and ``stimuli`` of (n_times, n_channels) doubles, and
``ScoreValence``/``ScoreArousal``/``ScoreDominance``), the sampling rates, the electrode
names and the counts.

What the signals contain
------------------------
EEG (14 channels, 128 Hz, Emotiv-like units): a DC offset of about 4200 units per channel
(subject- and channel-specific, plus slow drift), a 1/f background (std ~10 units) with a
common-mode part, theta (~6 Hz), alpha (subject-specific peak 9-11.5 Hz, strongest at the
back) and beta (~20 Hz) rhythms, eye blinks (~0.2/s, ~100 units on AF3/AF4, less on
F7/F8/F3/F4), 50 Hz line noise, and a subject-specific gain per channel. Each stimulus and
each baseline is an independent stationary realisation of the subject's spectrum.

ECG (2 leads, 256 Hz): a P-QRS-T template at every beat of an RR series with respiratory
sinus arrhythmia (0.25 Hz) and beat-to-beat jitter, lead gains of a few hundred units, a DC
offset, baseline wander and line noise.

Ratings scatter around the real per-clip means (``CLIP_MEAN_RATINGS``; dominance follows
valence loosely) with a subject bias, rounded and clipped to 1..5.

The planted effect (what a model can learn)
-------------------------------------------
During a stimulus, band *power* in some regions is multiplied by ``exp(2 * k * g_s * e)``
where ``e = (rating - 3) / 2`` is in [-1, 1], ``k`` is ``effect_size`` (default
``EFFECT_SIZE`` = 0.6; ``effect_size=0`` switches the effect off) and ``g_s`` is a
subject-specific signed gain: magnitude U(0.6, 1.4), and the sign is flipped for about a
quarter of the subjects, independently per dimension. Baselines carry no effect.

* valence: alpha in the left frontal region (AF3 F7 F3 FC5) up, right frontal (FC6 F4 F8
  AF4) down -- a frontal alpha asymmetry;
* arousal: beta in F7 FC5 T7 / T8 FC6 F8 up and alpha in the posterior region (P7 O1 O2 P8)
  down; heart rate rises by 4 bpm per rating step (times ``|g_s|``);
* dominance: theta in AF3 F3 F4 AF4 up.

These are changes of the *spectral shape* of a channel, so they survive the per-(clip,
channel) z-scoring and max-abs scaling of HiSTN's preprocessing and are visible in 1-s
windows. Because direction and gain vary between subjects (and the alpha peak frequency and
baseline spectra too), a model trained within a subject learns the effect clearly more
easily than one trained across subjects.

Measured on a 6-subject x 18-clip x 62-s file (seed 1), with HiSTN preprocessing and 1-s
windows, a two-layer 1-D CNN reached weighted F1 0.85-0.96 within subject (first 40 s of
each clip for training, last 20 s for testing) but 0.18-0.30 leaving one subject out
(5 classes), for valence and arousal.

The drift (what a shortcut can learn)
-------------------------------------
Every stimulus and baseline gets, per channel, its own slow drift: a sinusoid of 0.005-0.02
Hz with a random phase and an N(0, 20)-unit amplitude (about twice the background's
standard deviation), independent of the ratings. Real recordings drift per recording too,
and it is the realistic reason why the paper's within-trial ``sd`` split is optimistic: the
drift identifies the clip, and under ``sd`` the test windows come from clips seen in
training, each carrying its clip's one rating. A 5-nearest-neighbour classifier on
per-window channel means and slopes (no band power) scores ~97 % weighted F1 under ``sd`` on
a 2-subject file, with or without the planted effect, and its chance level under
``sd-strict`` (whole clips held out). See ``docs/reproducing-the-paper.md``.

Everything is deterministic per ``seed``: subject ``s`` draws from
``numpy.random.default_rng([seed, s])``, so the first subjects of a small file equal those
of a large one with the same clip lengths.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..utils._checks import check_number, check_path
from ..utils.logging import logger, progress
from .dreamer import (
    BASELINE_SAMPLES,
    CLIP_MEAN_RATINGS,
    DIMENSIONS,
    ECG_SFREQ,
    EEG_CHANNELS,
    EEG_SFREQ,
    N_CLIPS,
    N_ECG_CHANNELS,
    N_SUBJECTS,
    RATING_RANGE,
    STIMULUS_SECONDS_RANGE,
)

#: Size of the planted rating effect (log-amplitude per unit of (rating - 3) / 2).
EFFECT_SIZE = 0.6

_CH = {name: i for i, name in enumerate(EEG_CHANNELS)}
_REGION = {
    "frontal_left": ("AF3", "F7", "F3", "FC5"),
    "frontal_right": ("FC6", "F4", "F8", "AF4"),
    "posterior": ("P7", "O1", "O2", "P8"),
    "temporal": ("F7", "FC5", "T7", "T8", "FC6", "F8"),
    "midfrontal": ("AF3", "F3", "F4", "AF4"),
}
# (band, region, sign) triples per rating dimension; the subject gain multiplies them.
_EFFECTS = {
    "valence": (("alpha", "frontal_left", 1.0), ("alpha", "frontal_right", -1.0)),
    "arousal": (("beta", "temporal", 1.0), ("alpha", "posterior", -1.0)),
    "dominance": (("theta", "midfrontal", 1.0),),
}
_BLINK_WEIGHTS = {"AF3": 1.0, "AF4": 1.0, "F7": 0.6, "F8": 0.6, "F3": 0.45, "F4": 0.45}
_LINE_FREQ = 50.0
_HR_PER_AROUSAL_STEP = 4.0


def _idx(names):
    return np.array([_CH[n] for n in names])


class _SubjectModel:
    """Random parameters of one synthetic subject."""

    def __init__(self, rng):
        n_ch = len(EEG_CHANNELS)
        self.dc = 4200.0 + rng.normal(0.0, 150.0, n_ch)
        self.gain = rng.uniform(0.7, 1.4, n_ch)
        self.background = rng.uniform(6.0, 12.0)
        self.alpha_freq = rng.uniform(9.0, 11.5)
        amp = {"theta": rng.uniform(0.6, 1.2, n_ch), "alpha": rng.uniform(0.8, 1.5, n_ch),
               "beta": rng.uniform(0.4, 0.8, n_ch)}
        amp["alpha"][_idx(_REGION["posterior"])] *= 2.0
        self.band_amp = amp
        signs = np.where(rng.random(len(DIMENSIONS)) < 0.25, -1.0, 1.0)
        self.effect_gain = signs * rng.uniform(0.6, 1.4, len(DIMENSIONS))
        self.blink_rate = rng.uniform(0.1, 0.3)
        self.line_amp = rng.uniform(1.0, 4.0)
        self.hr = rng.uniform(62.0, 82.0)
        self.ecg_dc = rng.uniform(1500.0, 2500.0, N_ECG_CHANNELS)
        self.ecg_gain = rng.uniform(250.0, 600.0, N_ECG_CHANNELS) * np.array([1.0, -0.6])
        self.rating_bias = rng.normal(0.0, 0.4, len(DIMENSIONS))

    def band_gains(self, ratings, effect_size=EFFECT_SIZE):
        """Per-band, per-channel amplitude multipliers for a clip's ratings (None: 1)."""
        gains = {b: np.ones(len(EEG_CHANNELS)) for b in self.band_amp}
        if ratings is None or effect_size == 0:
            return gains
        for d, dim in enumerate(DIMENSIONS):
            e = (ratings[d] - 3.0) / 2.0
            for band, region, sign in _EFFECTS[dim]:
                gains[band][_idx(_REGION[region])] *= np.exp(
                    effect_size * self.effect_gain[d] * sign * e)
        return gains


def _eeg(model, rng, n_times, ratings, effect_size=EFFECT_SIZE):
    """One (14, n_times) EEG segment; ``ratings`` None means a neutral baseline."""
    n_ch = len(EEG_CHANNELS)
    freqs = np.fft.rfftfreq(n_times, 1.0 / EEG_SFREQ)
    gains = model.band_gains(ratings, effect_size)
    # amplitude spectra: 1/f background plus Gaussian band peaks (sqrt of a PSD shape)
    psd = np.empty((n_ch + 1, freqs.size))
    psd[:] = 4.0 / (freqs + 0.5) ** 1.2
    peaks = {"theta": (6.0, 1.2), "alpha": (model.alpha_freq, 0.8), "beta": (20.0, 4.0)}
    for band, (f0, width) in peaks.items():
        shape = np.exp(-0.5 * ((freqs - f0) / width) ** 2)
        psd[:n_ch] += (model.band_amp[band] * gains[band])[:, None] ** 2 * shape
    spec = rng.standard_normal((n_ch + 1, freqs.size)) + 1j * rng.standard_normal(
        (n_ch + 1, freqs.size))
    spec *= np.sqrt(psd / 2.0)
    spec[:, 0] = 0.0
    x = np.fft.irfft(spec, n_times, axis=-1, norm="ortho")
    x = x[:n_ch] + 0.5 * x[n_ch]  # common-mode part shared by every channel
    x *= model.background * model.gain[:, None]
    t = np.arange(n_times) / EEG_SFREQ
    x += model.line_amp * np.sin(2 * np.pi * _LINE_FREQ * t + rng.uniform(0, 2 * np.pi))
    # eye blinks: a 0.1-s Gaussian bump at Poisson times, weighted on frontal channels
    n_blinks = rng.poisson(model.blink_rate * n_times / EEG_SFREQ)
    if n_blinks:
        train = np.zeros(n_times)
        np.add.at(train, rng.integers(0, n_times, n_blinks), rng.uniform(70.0, 140.0, n_blinks))
        kt = np.arange(-40, 41) / EEG_SFREQ
        blink = np.convolve(train, np.exp(-0.5 * (kt / 0.08) ** 2), mode="same")
        for name, w in _BLINK_WEIGHTS.items():
            x[_CH[name]] += w * blink
    drift = rng.normal(0.0, 20.0, (n_ch, 1)) * np.sin(
        2 * np.pi * rng.uniform(0.005, 0.02) * t + rng.uniform(0, 2 * np.pi))
    x += model.dc[:, None] + drift
    return x


def _ecg_template():
    """P-QRS-T waveform (unit R peak) sampled at ECG_SFREQ, and the R-peak index."""
    t = np.arange(round(-0.3 * ECG_SFREQ), round(0.45 * ECG_SFREQ) + 1) / ECG_SFREQ
    waves = ((-0.2, 0.15, 0.025), (-0.03, -0.12, 0.008), (0.0, 1.0, 0.01),
             (0.03, -0.25, 0.01), (0.25, 0.3, 0.04))
    tmpl = sum(a * np.exp(-0.5 * ((t - mu) / w) ** 2) for mu, a, w in waves)
    return tmpl, int(np.argmin(np.abs(t)))


def _ecg(model, rng, n_times, heart_rate):
    """One (2, n_times) ECG segment at ``heart_rate`` bpm; also returns R-peak samples."""
    duration = n_times / ECG_SFREQ
    rr0 = 60.0 / heart_rate
    n_beats = int(duration / rr0 * 1.3) + 4
    rr = rr0 * (1.0 + rng.normal(0.0, 0.03, n_beats))
    beats = rng.uniform(0.0, rr0) + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    rr *= 1.0 + 0.05 * np.sin(2 * np.pi * 0.25 * beats)  # respiratory sinus arrhythmia
    beats = beats[0] + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    peaks = np.round(beats * ECG_SFREQ).astype(np.int64)
    peaks = peaks[peaks < n_times]
    tmpl, r_idx = _ecg_template()
    train = np.zeros(n_times + tmpl.size)
    train[peaks] = rng.uniform(0.9, 1.1, peaks.size)
    wave = np.convolve(train, tmpl)[r_idx:r_idx + n_times]
    t = np.arange(n_times) / ECG_SFREQ
    wander = 0.08 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    ecg = (wave + wander)[None, :] * model.ecg_gain[:, None]
    ecg += rng.normal(0.0, 5.0, ecg.shape)
    ecg += 3.0 * np.sin(2 * np.pi * _LINE_FREQ * t)
    ecg += model.ecg_dc[:, None]
    return ecg, peaks


def _ratings(model, rng, n_clips):
    out = np.empty((n_clips, len(DIMENSIONS)))
    clips = np.arange(n_clips) % N_CLIPS
    val = np.asarray(CLIP_MEAN_RATINGS["valence"])[clips]
    aro = np.asarray(CLIP_MEAN_RATINGS["arousal"])[clips]
    means = (val, aro, 3.0 + 0.4 * (val - 3.0))
    for d in range(len(DIMENSIONS)):
        out[:, d] = means[d] + model.rating_bias[d] + rng.normal(0.0, 0.8, n_clips)
    return np.clip(np.round(out), *RATING_RANGE)


def _stimulus_samples(n_clips, stimulus_seconds, seed):
    if stimulus_seconds is not None:
        return np.full(n_clips, int(round(stimulus_seconds * EEG_SFREQ)))
    lo, hi = STIMULUS_SECONDS_RANGE
    rng = np.random.default_rng([seed, 2**31])
    # triangular(65, 140, 393) has mean 199 s like DREAMER's clips
    secs = rng.triangular(lo, 140.0, hi, n_clips)
    if n_clips >= 2:
        secs[np.argmin(secs)], secs[np.argmax(secs)] = lo, hi
    return np.round(secs * EEG_SFREQ).astype(np.int64)


def make_synthetic_dreamer(path, *, n_subjects=N_SUBJECTS, n_clips=N_CLIPS,
                           stimulus_seconds=None, seed=0, effect_size=EFFECT_SIZE):
    """Write a seeded DREAMER-layout MATLAB file with a documented planted effect.

    Parameters
    ----------
    path : str | Path
        Output ``.mat`` file (parent folders are created; written atomically).
    n_subjects : int
        Number of subjects (DREAMER has 23).
    n_clips : int
        Clips per subject (DREAMER has 18; more than 18 reuses the rating means cyclically).
    stimulus_seconds : float | None
        ``None``: DREAMER-like lengths, 65-393 s (mean ~199 s), one per clip, shared by all
        subjects. A number: every stimulus that long (>= 1 s; >= 60 s for HiSTN
        preprocessing).
    seed : int
        Random seed; the file is a deterministic function of all arguments.
    effect_size : float
        Size ``k`` of the planted rating effect (default :data:`EFFECT_SIZE`); it also
        scales the heart-rate link to arousal. ``0`` switches the effect off: the signals
        are then independent of the ratings (the subjects' parameters and ratings are those
        of the default file; the signals are another realisation, since the ECG's random
        draws depend on the heart rate), a negative control on which any score above
        chance comes from a shortcut.

    Returns
    -------
    path : Path
        The written file.

    Notes
    -----
    A full-size file (23 x 18 with DREAMER lengths) holds about 2 GB of doubles and needs
    about that much memory while it is written. See the module docstring for the content.
    """
    import scipy.io

    path = check_path("output file", path, must_exist=False)
    n_subjects = check_number("n_subjects", n_subjects, low=1, integer=True)
    n_clips = check_number("n_clips", n_clips, low=1, integer=True)
    seed = check_number("seed", seed, low=0, integer=True)
    effect_size = check_number("effect_size", effect_size, low=0.0,
                               hint="pass a size >= 0, e.g. 0.6 (the default) or 0 to switch "
                                    "the planted effect off")
    hr_scale = effect_size / EFFECT_SIZE
    if stimulus_seconds is not None:
        stimulus_seconds = check_number("stimulus_seconds", stimulus_seconds, low=1.0,
                                        hint="pass the stimulus length in seconds, e.g. 62")
    lengths = _stimulus_samples(n_clips, stimulus_seconds, seed)
    ratio = ECG_SFREQ // EEG_SFREQ
    data = np.empty((1, n_subjects), dtype=object)
    for s in progress(range(n_subjects), desc="synthetic DREAMER", total=n_subjects):
        rng = np.random.default_rng([seed, s])
        model = _SubjectModel(rng)
        ratings = _ratings(model, rng, n_clips)
        cells = {k: np.empty((n_clips, 1), dtype=object) for k in ("eb", "es", "cb", "cs")}
        for j in range(n_clips):
            # .T gives the file's (n_times, n_channels) layout without a copy
            cells["eb"][j, 0] = _eeg(model, rng, BASELINE_SAMPLES, None).T
            cells["es"][j, 0] = _eeg(model, rng, int(lengths[j]), ratings[j], effect_size).T
            cells["cb"][j, 0] = _ecg(model, rng, BASELINE_SAMPLES * ratio, model.hr)[0].T
            hr = model.hr + hr_scale * _HR_PER_AROUSAL_STEP * abs(model.effect_gain[1]) * (
                ratings[j, 1] - 3.0) + rng.normal(0.0, 1.5)
            cells["cs"][j, 0] = _ecg(model, rng, int(lengths[j]) * ratio, hr)[0].T
        data[0, s] = {
            "Age": str(int(rng.integers(22, 34))),
            "Gender": "male" if rng.random() < 0.6 else "female",
            "EEG": {"baseline": cells["eb"], "stimuli": cells["es"]},
            "ECG": {"baseline": cells["cb"], "stimuli": cells["cs"]},
            "ScoreValence": ratings[:, 0:1].copy(),
            "ScoreArousal": ratings[:, 1:2].copy(),
            "ScoreDominance": ratings[:, 2:3].copy(),
        }
    electrodes = np.empty((1, len(EEG_CHANNELS)), dtype=object)
    electrodes[0, :] = list(EEG_CHANNELS)
    top = {
        "Data": data,
        "EEG_SamplingRate": float(EEG_SFREQ),
        "ECG_SamplingRate": float(ECG_SFREQ),
        "EEG_Electrodes": electrodes,
        "noOfSubjects": float(n_subjects),
        "noOfVideoSequences": float(n_clips),
        "Disclaimer": "Synthetic stand-in generated by physioemo; not DREAMER data.",
        "Provider": "physioemo.datasets.make_synthetic_dreamer",
        "Version": f"synthetic seed={seed}",
        "Acknowledgement": "Layout of DREAMER (Katsigiannis & Ramzan, IEEE JBHI 2018).",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            scipy.io.savemat(f, {"DREAMER": top}, format="5", do_compression=False,
                             oned_as="column")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.info("wrote %s (%d subjects x %d clips, %.1f MB)", path, n_subjects, n_clips,
                path.stat().st_size / 1e6)
    return Path(path)
