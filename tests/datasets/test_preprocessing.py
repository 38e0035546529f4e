"""The one normalisation: paper and causal forms, streaming equals offline, flat channels."""

import numpy as np
import pytest

from physioemo.datasets.preprocessing import (
    CausalNormalizer,
    baseline_stats,
    check_form,
    checkpoint_form,
    normalize,
    normalize_recording,
)
from physioemo.exceptions import DataError, ParameterError


def _signal(n_channels=3, n_times=2000, seed=0):
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-500, 500, (n_channels, 1))
    return offsets + rng.normal(0, 20, (n_channels, n_times)) * rng.uniform(0.5, 2,
                                                                            (n_channels, 1))


def test_paper_form_is_the_reference_recipe():
    x = _signal()
    base, stim = x[:, :300], x[:, 300:]
    # oracle by hand: z-score with the baseline's mean and population std, then max-abs
    mu = base.sum(1, keepdims=True) / base.shape[1]
    sd = np.sqrt(((base - mu) ** 2).sum(1, keepdims=True) / base.shape[1])
    z = (stim - mu) / sd
    np.testing.assert_allclose(normalize(stim, base), z / np.abs(z).max(1, keepdims=True),
                               rtol=1e-12, atol=1e-12)
    # in 500-sample segments: each one divided by its own peak
    out = normalize(stim, base, segment_samples=500)
    for s0 in range(0, stim.shape[1], 500):
        blk = z[:, s0:s0 + 500]
        np.testing.assert_allclose(out[:, s0:s0 + 500], blk / np.abs(blk).max(1, keepdims=True),
                                   rtol=1e-12, atol=1e-12)


def test_causal_form_divides_by_the_baseline_peak():
    x = _signal()
    base, stim = x[:, :300], x[:, 300:]
    mu, sd = base.mean(1, keepdims=True), base.std(1, keepdims=True)
    peak = np.abs((base - mu) / sd).max(1, keepdims=True)
    np.testing.assert_allclose(normalize(stim, base, form="causal"), (stim - mu) / sd / peak,
                               rtol=1e-12, atol=1e-12)
    stats = baseline_stats(base)
    assert (stats.scale >= 1).all()  # |z| of a z-scored segment reaches 1 somewhere
    # the causal form of a sample does not depend on any later sample
    later = stim.copy()
    later[:, 500:] *= 10
    np.testing.assert_array_equal(normalize(later, base, form="causal")[:, :500],
                                  normalize(stim, base, form="causal")[:, :500])
    assert not np.array_equal(normalize(later, base)[:, :500], normalize(stim, base)[:, :500])


@pytest.mark.parametrize("seed", range(5))
def test_streaming_equals_offline_for_any_chunks(seed):
    rng = np.random.default_rng(seed)
    x = _signal(n_times=3000, seed=seed)
    start, n_base = int(rng.integers(0, 200)), int(rng.integers(2, 700))
    offline = normalize_recording(x, start, n_base, form="causal")
    # NaN up to the end of the baseline, then the causal form of the baseline's stats
    stop = start + n_base
    assert np.isnan(offline[:, :stop]).all() and np.isfinite(offline[:, stop:]).all()
    np.testing.assert_allclose(offline[:, stop:],
                               normalize(x[:, stop:], x[:, start:stop], form="causal"),
                               rtol=0, atol=0)
    sizes = [1] * 20 + list(rng.integers(0, 400, 40))
    norm = CausalNormalizer(x.shape[0], start, n_base)
    parts, t = [], 0
    for size in sizes:
        parts.append(norm.update(x[:, t:t + size]))
        t += size
        if t >= x.shape[1]:
            break
    parts.append(norm.update(x[:, t:]))
    streamed = np.concatenate(parts, axis=1)
    assert norm.n_seen == x.shape[1] and norm.ready
    np.testing.assert_array_equal(streamed, offline)  # bit-identical, NaNs included


def test_sample_by_sample_equals_offline():
    x = _signal(n_times=400)
    norm = CausalNormalizer(3, 10, 100)
    streamed = np.concatenate([norm.update(x[:, i:i + 1]) for i in range(400)], axis=1)
    np.testing.assert_array_equal(streamed, normalize_recording(x, 10, 100, form="causal"))


def test_paper_recording_uses_the_inner_baseline():
    x = _signal(n_times=1000)
    out = normalize_recording(x, 100, 200, form="paper", segment_samples=600)
    np.testing.assert_allclose(out, normalize(x, x[:, 100:300], segment_samples=600),
                               rtol=0, atol=0)
    np.testing.assert_allclose(np.abs(out[:, :600]).max(1), 1.0)
    np.testing.assert_allclose(np.abs(out[:, 600:]).max(1), 1.0)


def test_flat_channel_is_one_policy_everywhere():
    x = _signal()
    x[1, 50:400] = 123.25  # flat during the baseline only
    names = ["Fz", "Cz", "Pz"]
    msg = r"channel Cz of rec.edf is flat in the baseline \(std 0 over its 300 samples\)"
    with pytest.raises(DataError, match=msg + ".*re-record it"):
        normalize(x[:, 400:], x[:, 60:360], ch_names=names, where="rec.edf",
                  hint="re-record it")
    for form in ("paper", "causal"):
        with pytest.raises(DataError, match=msg):
            normalize_recording(x, 60, 300, form=form, ch_names=names, where="rec.edf")
    norm = CausalNormalizer(3, 60, 300, ch_names=names, where="rec.edf")
    norm.update(x[:, :359])
    with pytest.raises(DataError, match=msg):
        norm.update(x[:, 359:361])
    # a constant but offset channel is flat as well (rounding leaves a tiny std)
    y = _signal()
    y[0] = 0.1
    with pytest.raises(DataError, match="channel 0 of"):
        baseline_stats(y)
    # paper: a segment that is all baseline mean cannot be max-abs scaled
    z = _signal(n_times=1200)
    z[2, 600:] = z[2, :100].mean()
    with pytest.raises(DataError, match=r"channel 2 of the data is flat in a segment "
                                        r"\(samples 600\.\.1200\)"):
        normalize(z, z[:, :100], segment_samples=600)


def test_forms_and_checkpoint_form():
    assert check_form("baseline-zscore") == "paper"
    assert checkpoint_form(None) == "paper" and checkpoint_form({}) == "paper"
    assert checkpoint_form({"normalization": "causal"}) == "causal"
    with pytest.raises(ParameterError, match="normalization='minmax' is not a valid option"):
        check_form("minmax")
    with pytest.raises(DataError, match="not inside the recording"):
        normalize_recording(np.ones((2, 50)), 40, 20)
    with pytest.raises(ParameterError, match=r"chunk must have shape \(3, n_times\)"):
        CausalNormalizer(3, 0, 10).update(np.zeros((2, 4)))
