"""Execute the notebooks with nbclient on small generated data.

Each notebook ends with a cell that checks its key numbers against independent
computations (SciPy, scikit-learn) and prints "all checks passed"; a failing assert there
fails the test. The kernel is this interpreter (a kernelspec written into a temporary
JUPYTER_PATH), so a fresh `make test` venv needs only the dev extra (ipykernel, nbclient,
nbformat). Matplotlib runs with the Agg backend.
"""

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "physioemo-test"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "physioemo tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' tempfile.mkdtemp
    monkeypatch.setenv("PHYSIOEMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PHYSIOEMO_DREAMER_PATH", raising=False)
    return tmp_path


def _execute(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def _stdout(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


@pytest.mark.parametrize("name", ["tour.ipynb", "dreamer_analysis.ipynb"])
def test_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def test_tour_runs_and_checks_pass(kernel_env):
    nb = _execute("tour.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert _stdout(code[-1]).strip() == "all checks passed"
    metrics = next(_stdout(c) for c in code if "weighted_f1:" in _stdout(c))
    values = {k.strip(): float(v) for k, v in
              (line.split(":") for line in metrics.strip().splitlines())}
    assert values["n_windows"] == 150.0
    for key in ("weighted_f1", "accuracy", "tri_p", "seq2hr"):
        assert 0.0 <= values[key] <= 100.0
    # Tri-P counts every exact hit too, so it can never be below accuracy
    assert values["tri_p"] >= values["accuracy"]


def test_dreamer_analysis_runs_and_checks_pass(kernel_env):
    nb = _execute("dreamer_analysis.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert _stdout(code[-1]).strip() == "all checks passed"
    table = next(_stdout(c) for c in code if "Seq2HR" in _stdout(c)).splitlines()[1:]
    rows = [line.split() for line in table]
    assert [(r[0], r[1]) for r in rows] == [
        (s, k) for s in ("gaussian", "onehot") for k in ("1", "2", "3", "mean", "std")]
    assert all(r[2] == "2" for r in rows if r[1] in "123")  # 2 folds per subject
