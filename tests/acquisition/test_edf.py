"""EDF+ writing: what the format cannot hold is planned, returned and logged exactly."""

import datetime

import numpy as np
import pytest

from physioemo.acquisition.edf import (
    EDF_TEXT_BYTES,
    _merge_runs,
    _runs,
    edf_text,
    plan_annotations,
    write_edf,
)


def test_edf_text_escapes_controls_and_cuts_at_a_character():
    assert edf_text("stim 3") == ("stim 3", "exact")
    assert edf_text("a\x00b\x14c\x15\t") == ("a\\x00b\\x14c\\x15\\x09", "escaped")
    text, how = edf_text("é" * 30)  # 60 bytes: cut between characters, never inside one
    assert how == "shortened" and text == "é" * 18 + "…"
    assert len(text.encode()) == EDF_TEXT_BYTES - 1
    text, how = edf_text("x" * (1 << 20))
    assert how == "shortened" and text == "x" * 37 + "…" and len(text.encode()) == 40
    assert edf_text("x" * 40) == ("x" * 40, "exact")


def test_runs_and_their_merging():
    mask = np.zeros(20, bool)
    mask[[1, 2, 5, 9, 10, 11, 19]] = True
    runs = _runs(mask)
    np.testing.assert_array_equal(runs, [[1, 3], [5, 6], [9, 12], [19, 20]])
    # gaps 2, 3, 7: merging to 2 runs closes the two smallest gaps
    np.testing.assert_array_equal(_merge_runs(runs, 2), [[1, 12], [19, 20]])
    np.testing.assert_array_equal(_merge_runs(runs, 4), runs)


def test_plan_keeps_system_annotations_and_counts_the_rest():
    anns = [{"onset": 0.9 - 0.01 * i, "description": f"m{i}"} for i in range(70)]
    anns[3]["description"] = "x" * 50
    anns[4]["bytes_base64"] = "/w=="
    system = [{"onset": 0.5, "duration": 0.5, "description": "sys"}]
    written, status = plan_annotations(anns, 1, system)
    assert len(written) == 64 and written[0]["text"] == "sys"
    # the earliest 62 (m69 ... m8) are stored, then one summary at m7's onset
    assert [s["edf"] for s in status[8:]] == ["exact"] * 62
    assert [s["edf"] for s in status[:8]] == ["not stored"] * 8
    assert written[-1] == {"onset": pytest.approx(0.83), "duration": 0.0,
                           "text": "physioemo: 8 more in sidecar JSON"}
    written, status = plan_annotations(anns[:10], 1)
    assert status[3] == {"edf": "shortened", "edf_text": "x" * 37 + "…"}
    assert status[4] == {"edf": "escaped", "edf_text": "m4"}  # the bytes were not UTF-8


def test_no_temp_file_is_left_when_writing_fails(tmp_path, monkeypatch):
    import pyedflib

    def fail(*args):
        raise RuntimeError("simulated failure inside the writer")

    monkeypatch.setattr(pyedflib.EdfWriter, "writeAnnotation", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        write_edf(tmp_path / "t.edf", np.zeros((1, 250)), 250.0, ["A"], physical_min=-1.0,
                  physical_max=1.0, annotations=[{"onset": 0.1, "description": "ok"}])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fraction", [0.0, 0.097259, 0.5, 0.99996])
def test_an_annotation_on_the_first_sample_survives_any_start_time(tmp_path, fraction):
    import mne
    import pyedflib

    path = tmp_path / "s.edf"
    anns = [{"onset": 0.0, "description": "first"}, {"onset": 0.5, "description": "mid"}]
    write_edf(path, np.zeros((1, 250)), 250.0, ["A"], physical_min=-1.0, physical_max=1.0,
              annotations=anns, start_time=1_700_000_000 + fraction)
    raw = mne.io.read_raw_edf(path, verbose="error")
    assert list(raw.annotations.description) == ["first", "mid"]
    np.testing.assert_allclose(raw.annotations.onset, [0.0, 0.5], atol=1e-4)
    with pyedflib.EdfReader(str(path)) as reader:  # whole seconds, no garbled fraction
        assert reader.getStartdatetime() == datetime.datetime(2023, 11, 14, 22, 13, 20)


@pytest.mark.parametrize("filetype", ["edf", "bdf"])
def test_stored_values_are_what_a_reader_gets(tmp_path, filetype):
    import pyedflib

    from physioemo.acquisition.edf import stored_values, write_edf

    rng = np.random.default_rng(0)
    data = rng.normal(0, 300, (2, 500))
    data[0, 10] = 5000.0  # clipped
    data[1, 20] = np.nan  # written as 0
    path = tmp_path / f"x.{filetype}"
    write_edf(path, data, 250.0, ["A", "B"], physical_min=-1000.0, physical_max=1000.0,
              filetype=filetype)
    with pyedflib.EdfReader(str(path)) as r:
        read = np.stack([r.readSignal(i) for i in range(2)])
    got = stored_values(data, -1000.0, 1000.0, filetype)
    np.testing.assert_allclose(got, read, rtol=0, atol=1e-9)
    assert got[0, 10] == pytest.approx(1000.0) and abs(got[1, 20]) < 0.05
    step = 2000.0 / (65535 if filetype == "edf" else 16777215)
    ok = np.isfinite(data) & (np.abs(data) < 1000)
    assert 0 < np.abs(got - np.nan_to_num(data))[ok].max() <= step / 2 + 1e-9
