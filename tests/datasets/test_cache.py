import os

import numpy as np
import pytest

from physioemo.datasets import cache as cache_mod
from physioemo.datasets import histn_preprocess, load_dreamer, load_preprocessed
from physioemo.exceptions import DataError


@pytest.fixture
def src(tmp_path, mat_builder):
    subjects = mat_builder.random_subjects(lengths=(7700, 7800))
    return mat_builder.write(tmp_path / "src.mat", subjects), subjects


def _entries(d):
    return sorted(p.name for p in d.iterdir() if p.name != cache_mod.HASH_MEMO)


def _count_calls(monkeypatch):
    calls = []
    real = cache_mod.histn_preprocess

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "histn_preprocess", spy)
    return calls


def test_hit_after_miss_returns_the_same_arrays(src, tmp_path, monkeypatch):
    path, _ = src
    calls = _count_calls(monkeypatch)
    cdir = tmp_path / "cache"
    data, labels = load_preprocessed(path, cache_dir=cdir)
    expected = histn_preprocess(load_dreamer(path))
    np.testing.assert_array_equal(data, expected[0])
    np.testing.assert_array_equal(labels, expected[1])
    assert len(calls) == 1 and len(_entries(cdir)) == 1
    again, again_labels = load_preprocessed(path, cache_dir=cdir)
    assert len(calls) == 1  # served from disk
    np.testing.assert_array_equal(again, data)
    np.testing.assert_array_equal(again_labels, labels)
    assert again.dtype == np.float32 and again_labels.dtype == np.int64
    load_preprocessed(path, cache_dir=cdir, force=True)
    assert len(calls) == 2 and len(_entries(cdir)) == 1


def test_parameter_change_rebuilds(src, tmp_path, monkeypatch):
    path, _ = src
    calls = _count_calls(monkeypatch)
    cdir = tmp_path / "cache"
    base, _ = load_preprocessed(path, cache_dir=cdir)
    filt, _ = load_preprocessed(path, cache_dir=cdir, l_freq=1.0, h_freq=40.0)
    sub, _ = load_preprocessed(path, cache_dir=cdir, subjects=[1])
    norm, _ = load_preprocessed(path, cache_dir=cdir, normalization="none")
    assert len(calls) == 4 and len(_entries(cdir)) == 4
    assert not np.allclose(base, filt)
    np.testing.assert_array_equal(sub[0], base[1])
    # explicit defaults hash like omitted ones (every parameter is resolved first)
    load_preprocessed(path, cache_dir=cdir, normalization="baseline-zscore", l_freq=None)
    assert len(calls) == 4
    with pytest.raises(TypeError):
        load_preprocessed(path, cache_dir=cdir, lfreq=1.0)
    causal, _ = load_preprocessed(path, cache_dir=cdir, normalization="causal")
    assert len(calls) == 5 and len(_entries(cdir)) == 5  # the form is part of the key
    np.testing.assert_array_equal(
        causal, histn_preprocess(load_dreamer(path), normalization="causal")[0])


def test_changed_source_file_rebuilds(src, tmp_path, monkeypatch, mat_builder):
    path, subjects = src
    calls = _count_calls(monkeypatch)
    cdir = tmp_path / "cache"
    first, _ = load_preprocessed(path, cache_dir=cdir)
    # same size, same layout, different samples, mtime restored: the content hash catches it
    st = path.stat()
    subjects[1]["eeg_stimuli"][1] = subjects[1]["eeg_stimuli"][1] + 50.0
    mat_builder.write(path, subjects)
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    second, _ = load_preprocessed(path, cache_dir=cdir)
    assert len(calls) == 2
    assert not np.array_equal(first[1, 1], second[1, 1])
    # only the mtime changes (e.g. touch): hashed again, same content, entry reused
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_preprocessed(path, cache_dir=cdir)
    assert len(calls) == 2


def test_write_is_atomic(src, tmp_path, monkeypatch):
    path, _ = src
    cdir = tmp_path / "cache"

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half an npz")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        load_preprocessed(path, cache_dir=cdir)
    assert _entries(cdir) == []  # no partial entry, no temporary left behind
    monkeypatch.undo()
    data, _ = load_preprocessed(path, cache_dir=cdir)
    assert data.shape == (2, 2, 14, 7680)


def test_corrupt_or_foreign_entry_is_rebuilt(src, tmp_path, monkeypatch):
    path, _ = src
    cdir = tmp_path / "cache"
    data, _ = load_preprocessed(path, cache_dir=cdir)
    (entry,) = cdir.glob("dreamer-histn-*.npz")
    entry.write_bytes(b"garbage")
    calls = _count_calls(monkeypatch)
    again, _ = load_preprocessed(path, cache_dir=cdir)
    assert len(calls) == 1
    np.testing.assert_array_equal(again, data)
    np.savez(entry, data=np.zeros(1), labels=np.zeros(1), key=np.array("someone else"))
    again, _ = load_preprocessed(path, cache_dir=cdir)
    assert len(calls) == 2
    np.testing.assert_array_equal(again, data)
    with np.load(entry, allow_pickle=False) as z:  # plain arrays, no pickle needed
        assert set(z.files) == {"data", "labels", "key"}


def test_default_cache_dir_and_missing_source(src, tmp_path, monkeypatch):
    path, _ = src
    monkeypatch.setenv("PHYSIOEMO_CACHE_DIR", str(tmp_path / "envcache"))
    monkeypatch.setenv("PHYSIOEMO_DREAMER_PATH", str(path))
    load_preprocessed()
    assert len(_entries(tmp_path / "envcache")) == 1
    with pytest.raises(DataError, match="not found.*--dreamer PATH"):
        load_preprocessed(tmp_path / "nope.mat", cache_dir=tmp_path)


def test_edit_in_the_middle_with_size_and_mtime_restored_is_not_reused(tmp_path, monkeypatch,
                                                                       mat_builder):
    # a file larger than 2 MiB, edited in place far from its first and last MiB
    subjects = mat_builder.random_subjects(n_subjects=2, lengths=(7700, 7800, 7690))
    path = mat_builder.write(tmp_path / "big.mat", subjects)
    size = path.stat().st_size
    assert size > 4 << 20
    calls = _count_calls(monkeypatch)
    cdir = tmp_path / "cache"
    first, _ = load_preprocessed(path, cache_dir=cdir)
    row = np.asarray(load_dreamer(path).subjects[1].eeg_stimulus[1][3], dtype="<f8")
    raw = path.read_bytes()
    offset = raw.find(row[-200:-100].tobytes())  # inside the kept last 60 s
    assert 1 << 21 < offset < size - (1 << 21)
    st = path.stat()
    with open(path, "r+b") as fid:  # same inode, same size
        fid.seek(offset)
        fid.write((-row[-200:-100]).tobytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    second, _ = load_preprocessed(path, cache_dir=cdir)
    assert len(calls) == 2  # rebuilt, not served from the stale entry
    fresh = histn_preprocess(load_dreamer(path))[0]
    np.testing.assert_array_equal(second, fresh)
    assert not np.array_equal(first[1, 1], second[1, 1])
    np.testing.assert_array_equal(first[0], second[0])


def test_content_hash_is_memoised_and_checked_against_an_oracle(src, tmp_path, monkeypatch):
    import hashlib

    path, _ = src
    assert cache_mod.file_sha256(path, memo_dir=tmp_path) == hashlib.sha256(
        path.read_bytes()).hexdigest()
    opened = []
    real_open = open

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    cache_mod.file_sha256(path, memo_dir=tmp_path)
    assert str(path.resolve()) not in opened  # served from the memo
    os.utime(path)  # a touch changes the ctime (and here the mtime): hashed again
    cache_mod.file_sha256(path, memo_dir=tmp_path)
    assert str(path.resolve()) in opened


def test_a_folder_as_source_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="is a folder or not a regular file"):
        load_preprocessed(tmp_path, cache_dir=tmp_path / "cache")


def test_r_peaks_are_aligned_on_the_kept_60_s_and_cached(tmp_path, monkeypatch, mat_builder):
    from physioemo.datasets import features
    from physioemo.datasets.cache import load_r_peaks

    lengths = (7700, 7900)
    subjects = mat_builder.random_subjects(lengths=lengths)
    beats = {}
    for s, subj in enumerate(subjects):
        for j, m in enumerate(lengths):
            where = np.arange(100 + 7 * s + 3 * j, 2 * m - 100, 200 + 10 * j)
            subj["ecg_stimuli"][j][where, 0] += 400.0  # R peaks on lead 1
            beats[s, j] = where - (2 * m - 2 * 7680)  # counted from the first kept sample
    path = mat_builder.write(tmp_path / "ecg.mat", subjects)
    calls = []
    real = features._dreamer_r_peaks
    monkeypatch.setattr(features, "_dreamer_r_peaks",
                        lambda *a: calls.append(a) or real(*a))
    cdir = tmp_path / "cache"
    peaks = load_r_peaks(path, cache_dir=cdir)
    assert len(peaks) == 2 and all(len(p) == 2 for p in peaks)
    for (s, j), want in beats.items():
        np.testing.assert_array_equal(peaks[s][j], want)
        assert peaks[s][j].dtype == np.int64
    again = load_r_peaks(path, cache_dir=cdir)
    assert len(calls) == 1  # served from disk
    for s in range(2):
        for j in range(2):
            np.testing.assert_array_equal(again[s][j], peaks[s][j])
    one = load_r_peaks(path, subjects=[1], cache_dir=cdir)
    assert len(calls) == 2 and len(one) == 1
    np.testing.assert_array_equal(one[0][1], peaks[1][1])
    assert sum(p.name.startswith("dreamer-rpeaks-") for p in cdir.iterdir()) == 2
