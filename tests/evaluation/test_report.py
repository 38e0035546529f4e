import csv
import json
import re

import numpy as np
import pytest

from physioemo.evaluation.report import build_report, summarize
from physioemo.exceptions import DataError


def _rec(subject, fold, f1, seq, smoothing="gaussian", protocol="sd"):
    metrics = {"weighted_f1": f1, "accuracy": f1 - 1, "top2_accuracy": 90.0, "tri_p": 95.0,
               "seq2hr": seq, "macro_f1": f1}
    return {"protocol": protocol, "dimension": "valence", "smoothing": smoothing,
            "subject": subject, "fold": fold, "metrics": metrics,
            "confusion": np.eye(5, dtype=int).tolist(),
            "curve": {"train_loss": [1.0, 0.5], "val_loss": [1.2, 0.9], "lr": [1e-3, 1e-3]}}


RECS = [_rec(1, 0, 60.0, 50.0), _rec(1, 1, 80.0, 70.0), _rec(2, 0, 40.0, 20.0),
        _rec(1, 0, 50.0, 30.0, "onehot"), _rec(2, 0, 30.0, 10.0, "onehot")]


def test_summary_is_fold_mean_then_subject_mean_std_ddof0():
    rows = [r for r in summarize(RECS) if r["smoothing"] == "gaussian"]
    assert [r["subject"] for r in rows] == [1, 2, "mean", "std"]
    assert rows[0]["weighted_f1"] == 70.0 and rows[0]["n_folds"] == 2
    # subjects 70 and 40 -> mean 55, population std 15
    assert rows[2]["weighted_f1"] == 55.0 and rows[3]["weighted_f1"] == 15.0
    assert rows[3]["seq2hr"] == pytest.approx(np.std([60.0, 20.0]))


def test_build_report_writes_tables_and_self_contained_html(tmp_path):
    for sm in ("gaussian", "onehot"):
        d = tmp_path / sm
        d.mkdir()
        (d / "results.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in RECS if r["smoothing"] == sm))
    paths = build_report([tmp_path / "gaussian", tmp_path / "onehot"], tmp_path,
                         notes=["SYNTHETIC DATA"])
    with open(paths["csv"]) as fid:
        rows = list(csv.DictReader(fid))
    mean = [r for r in rows if r["smoothing"] == "gaussian" and r["subject"] == "mean"][0]
    assert float(mean["weighted_f1"]) == 55.0
    md = paths["md"].read_text()
    assert "**55.00 ± 15.00**" in md and "96.82" in md and "not ours" in md
    html = paths["html"].read_text()
    assert "SYNTHETIC DATA" in html and "Gaussian vs one-hot" in html
    assert len(re.findall("data:image/png;base64,", html)) == 5
    assert not re.search(r"src=['\"]http", html)


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no results in"):
        build_report(tmp_path, tmp_path)


def test_report_flags_runs_that_depart_from_the_recipe(tmp_path):
    for sm, settings in (("gaussian", {"epochs": 20, "lr": None, "overrides": None}),
                         ("onehot", {"epochs": None, "lr": None, "overrides": None})):
        d = tmp_path / sm
        d.mkdir()
        (d / "results.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in RECS if r["smoothing"] == sm))
        (d / "settings.json").write_text(json.dumps(settings))
    paths = build_report([tmp_path / "gaussian", tmp_path / "onehot"], tmp_path)
    html = paths["html"].read_text()
    assert "NOT the paper&#x27;s recipe in gaussian/ (epochs=20)" in html
    assert "recipe in onehot/" not in html  # the recipe's own settings: no warning
