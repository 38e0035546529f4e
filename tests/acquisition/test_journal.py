"""The recording journal: ownership lock, damaged files, and a fuzz test of recover."""

import json
import os

import mne
import numpy as np
import pytest

from physioemo.acquisition.edf import NONFINITE_ANNOTATION, PADDING_ANNOTATION
from physioemo.acquisition.journal import (
    ANNOTATIONS,
    HEADER,
    HEADER_COPY,
    SAMPLES,
    journal_owner,
    read_journal,
)
from physioemo.acquisition.recorder import (
    Recorder,
    check_output,
    journal_path,
    recover,
    sidecar_path,
)
from physioemo.exceptions import DataError

NAMES = ["Fz", "Cz", "Pz"]
STEP = 1000 / 65535


def _recorder(path, **kw):
    return Recorder(path, NAMES, 250.0, physical_min=-500.0, physical_max=500.0, **kw)


def _crashed(path, data, annotations=()):
    """A journal as a recording that died leaves it (files closed, lock free)."""
    rec = _recorder(path, flush_interval_s=0.0).start(start_time=1_700_000_000.0)
    rec.write(data)
    for onset, text in annotations:
        rec.annotate(onset, text)
    rec.abort()
    return journal_path(path)


def _read(path):
    return mne.io.read_raw_edf(path, preload=True, verbose="error")


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(0, 40, (3, 600))


def test_a_live_recording_is_never_touched(tmp_path, data):
    path = tmp_path / "live.edf"
    rec = _recorder(path, flush_interval_s=0.0).start()
    rec.write(data)
    journal = journal_path(path)
    assert journal_owner(journal) == f"process {os.getpid()} on {os.uname().nodename}"
    before = (journal / SAMPLES).read_bytes()
    for force in (False, True):
        with pytest.raises(DataError, match=rf"in progress.*process {os.getpid()}.*not even "
                                            "with --force") as err:
            check_output(path, force=force)
        assert "crash" not in str(err.value)  # a live recording is not called crashed
        with pytest.raises(DataError, match="in progress"):
            _recorder(path, force=force).start()
    with pytest.raises(DataError, match="in progress"):
        recover(path, force=True)
    assert (journal / SAMPLES).read_bytes() == before
    rec.write(data)  # still recording
    assert rec.close() == path
    np.testing.assert_allclose(_read(path).get_data()[:, :1200] * 1e6,
                               np.hstack([data, data]), atol=STEP / 2 + 1e-9)


def test_a_crashed_recording_is_called_so_and_force_discards_it(tmp_path, data):
    path = tmp_path / "crash.edf"
    journal = _crashed(path, data)
    assert journal_owner(journal) is None
    with pytest.raises(DataError, match="ended without closing.*physioemo recover"):
        check_output(path)
    rec = _recorder(path, force=True).start()
    rec.write(data[:, :250])
    rec.close()
    assert _read(path).n_times == 250


def _header_damaged(journal, name, how):
    text = (journal / name).read_bytes()
    if how == "truncated":
        (journal / name).write_bytes(text[:len(text) // 2])
    elif how == "missing":
        (journal / name).unlink()
    else:  # one digit of sfreq changed: valid JSON, wrong content
        (journal / name).write_bytes(text.replace(b'"sfreq": 250.0', b'"sfreq": 270.0'))


@pytest.mark.parametrize("how", ["truncated", "missing", "edited"])
def test_one_damaged_header_costs_nothing(tmp_path, data, how):
    path = tmp_path / "h.edf"
    journal = _crashed(path, data)
    _header_damaged(journal, HEADER, how)
    header, got, _, problems = read_journal(journal)
    assert header["sfreq"] == 250.0
    np.testing.assert_array_equal(got, data)
    assert len(problems) == 1 and problems[0].startswith(HEADER)
    recover(path)
    np.testing.assert_allclose(_read(path).get_data()[:, :600] * 1e6, data,
                               atol=STEP / 2 + 1e-9)
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["journal_problems"] == problems


def test_both_headers_damaged_keep_the_samples_and_say_how_to_fix(tmp_path, data):
    path = tmp_path / "h.edf"
    journal = _crashed(path, data)
    _header_damaged(journal, HEADER, "truncated")
    _header_damaged(journal, HEADER_COPY, "edited")
    before = (journal / SAMPLES).read_bytes()
    with pytest.raises(DataError, match=r"no readable header \(header.json is damaged.*"
                                        r"header.bak.json is damaged \(its checksum.*"
                                        r"14400 bytes of samples are kept untouched.*restore"):
        recover(path)
    assert (journal / SAMPLES).read_bytes() == before and not path.exists()


def test_bad_annotation_lines_are_reported_not_a_traceback(tmp_path, data):
    path = tmp_path / "a.edf"
    journal = _crashed(path, data, [(0.5, "stim")])
    with open(journal / ANNOTATIONS, "ab") as fid:
        fid.write(b'{"onset": "x"}\n[1, 2]\n{"onset": 1.0, "description": 3}\n'
                  b'{"onset": 1.5, "description": "ok \\u0000 too"}\n{"onset": 2.0, "de')
    recover(path)
    assert list(_read(path).annotations.description) == ["stim", "ok \\x00 too",
                                                         PADDING_ANNOTATION]
    problems = json.loads(sidecar_path(path).read_text())["journal_problems"]
    assert problems == [
        "annotations.jsonl line 2 unreadable (onset 'x' is not a number >= 0): "
        '{"onset": "x"}',
        "annotations.jsonl line 3 unreadable (not a JSON object): [1, 2]",
        "annotations.jsonl line 4 unreadable (description 3 is not text): "
        '{"onset": 1.0, "description": 3}',
        "annotations.jsonl line 6 unreadable (torn (the recording stopped while writing "
        'it)): {"onset": 2.0, "de']
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.edf", "a.json"]  # no temp


def test_nonfinite_samples_become_annotated_zeros_not_the_minimum(tmp_path, data, caplog):
    path = tmp_path / "nan.edf"
    data = data.copy()
    data[0, 100:110] = np.nan
    data[2, 105:120] = np.inf
    data[1, 300] = -np.inf
    _crashed(path, data)
    recover(path)
    raw = _read(path)
    got = raw.get_data() * 1e6
    bad = ~np.isfinite(data)
    np.testing.assert_allclose(got[:, :600][bad], 0.0, atol=STEP / 2 + 1e-9)
    np.testing.assert_allclose(got[:, :600][~bad], data[~bad], atol=STEP / 2 + 1e-9)
    ann = raw.annotations[list(raw.annotations.description).index(NONFINITE_ANNOTATION):]
    np.testing.assert_allclose(ann.onset[:2], [100 / 250, 300 / 250])
    np.testing.assert_allclose(ann.duration[:2], [20 / 250, 1 / 250])
    meta = json.loads(sidecar_path(path).read_text())["nonfinite_samples"]
    assert meta["n_values"] == 26 and meta["per_channel"] == {"Fz": 10, "Cz": 1, "Pz": 15}
    assert meta["spans"] == [[0.4, 0.08], [1.2, 0.004]]
    assert "26 sample values were NaN or inf (Fz: 10, Cz: 1, Pz: 15)" in caplog.text


def test_an_empty_journal_says_so(tmp_path):
    path = tmp_path / "empty.edf"
    _recorder(path).start().abort()
    with pytest.raises(DataError, match="holds no samples.*nothing to recover"):
        recover(path)
    assert journal_path(path).is_dir() and not path.exists()


# -- fuzz ------------------------------------------------------------------------------------
ANNS = [(0.1 * i, f"m{i} é\x00") for i in range(12)]


def _damage(rng, blob):
    """Truncate, or overwrite a few random bytes; return the damaged bytes and the damaged
    byte range ``[lo, hi)`` (``hi`` is the old length for a truncation)."""
    if rng.random() < 0.5 or not blob:
        cut = int(rng.integers(0, len(blob) + 1))
        return blob[:cut], cut, len(blob)
    start = int(rng.integers(0, len(blob)))
    n = int(rng.integers(1, 9))
    junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return (blob[:start] + junk + blob[start + n:])[:len(blob)], start, start + n


def _is_subsequence(short, long):
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


@pytest.mark.parametrize("name", [SAMPLES, ANNOTATIONS, HEADER, HEADER_COPY])
def test_fuzz_recover_never_loses_a_readable_sample(tmp_path, data, name):
    rng = np.random.default_rng(sum(map(ord, name)))
    texts_written = [t for _, t in ANNS]
    for trial in range(12):
        path = tmp_path / f"{trial}.edf"
        journal = _crashed(path, data, ANNS)
        blob = (journal / name).read_bytes()
        damaged, lo, hi = _damage(rng, blob)
        (journal / name).write_bytes(damaged)
        out = recover(path)  # never a traceback, never an error: one file is damaged
        got = _read(out).get_data() * 1e6
        meta = json.loads(sidecar_path(out).read_text())
        intact = np.ones(data.shape[1], bool)  # samples none of whose bytes were damaged
        if name == SAMPLES:
            assert meta["n_times"] == len(damaged) // 24
            sample = np.arange(data.shape[1])
            intact = ((sample + 1) * 24 <= lo) | ((sample * 24 >= hi) &
                                                   ((sample + 1) * 24 <= len(damaged)))
        else:
            assert meta["n_times"] == data.shape[1]
        idx = np.flatnonzero(intact)
        np.testing.assert_allclose(got[:, idx], data[:, idx], atol=STEP / 2 + 1e-9)
        texts = [m["description"] for m in meta["annotations"]]
        if name == ANNOTATIONS:  # every line none of whose bytes were damaged is kept
            ends = np.cumsum([len(line) + 1 for line in blob.split(b"\n")[:len(ANNS)]])
            starts = ends - np.diff(np.concatenate([[0], ends]))
            kept = [t for t, a, b in zip(texts_written, starts, ends, strict=True)
                    if b <= lo or (a >= hi and b <= len(damaged))]
            assert _is_subsequence(kept, texts), (kept, texts)
            assert len(texts) <= len(ANNS)
        else:
            assert texts == texts_written
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(
            f"{trial}.")) == [f"{trial}.edf", f"{trial}.json"]


def test_a_header_with_impossible_values_is_refused_with_its_reason(tmp_path, data):
    import hashlib

    path = tmp_path / "v.edf"
    journal = _crashed(path, data)
    for name in (HEADER, HEADER_COPY):  # consistent checksums, impossible content
        header = json.loads((journal / name).read_text())
        header["ch_names"] = []
        body = {k: v for k, v in header.items() if k != "sha256"}
        header["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()
                                          ).hexdigest()
        (journal / name).write_text(json.dumps(header))
    with pytest.raises(DataError, match=r"header.json has ch_names \[\] \(expected a "
                                        r"non-empty list of names\)"):
        recover(path)
