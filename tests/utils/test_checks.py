import numpy as np
import pytest

from physioemo.exceptions import DataError, ParameterError
from physioemo.utils._checks import (
    check_array,
    check_freq,
    check_number,
    check_option,
    check_path,
    check_random_state,
    check_sfreq,
)


def test_check_option_message_names_value_and_choices():
    assert check_option("phase", "zero", ("zero", "causal")) == "zero"
    with pytest.raises(ParameterError, match=r"phase='linear' is not a valid option.*'zero', "
                                             r"'causal'"):
        check_option("phase", "linear", ("zero", "causal"))


def test_parameter_error_is_value_error():
    with pytest.raises(ValueError):
        check_number("order", 0, low=1, integer=True)


@pytest.mark.parametrize("value, kwargs, match", [
    (0, dict(low=1, integer=True), r"order=0 is out of range: it must be >= 1"),
    (2.5, dict(integer=True), r"order must be an integer, got float"),
    (True, dict(integer=True), r"order must be an integer, got bool"),
    (float("nan"), dict(), r"order must be finite"),
    (5, dict(high=5, high_inclusive=False), r"must be < 5"),
])
def test_check_number_rejects(value, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        check_number("order", value, **kwargs)


def test_check_number_returns_coerced():
    assert check_number("n", np.int64(3), integer=True) == 3
    assert isinstance(check_number("x", 3), float)


def test_check_freq_nyquist_message():
    assert check_freq("l_freq", None, 128.0) is None
    with pytest.raises(ParameterError, match=r"h_freq=70.0 must be below Nyquist \(64.0 Hz for "
                                             r"sfreq=128.0\); lower h_freq or resample"):
        check_freq("h_freq", 70.0, check_sfreq(128))


def test_check_array():
    x = np.zeros((2, 10))
    assert check_array("data", x, ndim=2) is x
    with pytest.raises(ParameterError, match="floating-point array, got dtype int64"):
        check_array("data", np.zeros(3, dtype=np.int64))
    with pytest.raises(ParameterError, match=r"must have 2 dimension\(s\), got shape \(3,\)"):
        check_array("data", np.zeros(3), ndim=2)
    with pytest.raises(ParameterError, match="needs at least 20 samples on its last axis, got 10"):
        check_array("data", x, min_times=20)
    x[1, 3] = np.nan
    x[0, 0] = np.inf
    with pytest.raises(DataError, match=r"contains 2 NaN or infinite value\(s\)"):
        check_array("data", x)


def test_check_path(tmp_path, monkeypatch):
    monkeypatch.delenv("PHYSIOEMO_TEST_PATH", raising=False)
    with pytest.raises(ParameterError, match="or set PHYSIOEMO_TEST_PATH"):
        check_path("test file", None, env_var="PHYSIOEMO_TEST_PATH")
    f = tmp_path / "a.txt"
    with pytest.raises(DataError, match="test file not found"):
        check_path("test file", f)
    f.write_text("x")
    monkeypatch.setenv("PHYSIOEMO_TEST_PATH", str(f))
    assert check_path("test file", None, env_var="PHYSIOEMO_TEST_PATH") == f


def test_check_random_state_is_seeded():
    a = check_random_state(3).standard_normal(4)
    b = np.random.default_rng(3).standard_normal(4)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ParameterError, match="seed must be None"):
        check_random_state(-1)


def test_bad_value_errors_are_value_errors():
    # `except ValueError` catches numpy's, scipy's and MNE's bad-value errors; ours too
    with pytest.raises(ValueError, match="NaN"):
        check_array("x", np.array([1.0, np.nan]))
    assert issubclass(DataError, ValueError) and issubclass(ParameterError, ValueError)


def test_check_output_path(tmp_path):
    from physioemo.utils._checks import check_output_path

    inp = tmp_path / "in.edf"
    inp.write_text("data")
    out = tmp_path / "out.csv"
    assert check_output_path(out) == out
    out.write_text("old")
    with pytest.raises(DataError, match=r"--out '.*out.csv' already exists.*--force"):
        check_output_path(out)
    assert check_output_path(out, force=True) == out
    for other in (inp, tmp_path / "sub" / ".." / "in.edf"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(DataError, match="also an input.*not even with --force"):
            check_output_path(other, force=True, inputs=(None, inp))
    with pytest.raises(DataError, match="is a folder"):
        check_output_path(tmp_path, force=True)
    with pytest.raises(DataError, match="is a file, where a folder"):
        check_output_path(inp, kind="dir")
    with pytest.raises(DataError, match=r"cannot create .* is a file"):
        check_output_path(inp / "run", kind="dir")
    assert check_output_path(tmp_path / "a" / "b", kind="dir") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checking writes nothing
    with pytest.raises(DataError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "x.csv")
    for bad in ("/proc/x.csv", "/proc/x"):
        with pytest.raises(DataError, match="not writable"):
            check_output_path(bad, kind="file" if bad.endswith("csv") else "dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.edf", "out.csv", "sub"]
