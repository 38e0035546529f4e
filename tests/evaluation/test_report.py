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


# -- baselines beside HiSTN ------------------------------------------------------------------
def _with_baselines(rec, probe, classic, physio=None):
    rec = json.loads(json.dumps(rec))

    def m(f1):
        return {"metrics": {"weighted_f1": f1, "accuracy": f1}, "seconds": 0.1}

    rec["baselines"] = {"majority": m(5.0), "stratified": m(20.0), "classic": m(classic),
                        "physio": (m(physio) if physio is not None
                                   else {"available": False, "reason": "no ECG"}),
                        "probe": m(probe)}
    return rec


# HiSTN 70 (subject 1, folds 60 and 80) and 40 (subject 2); probe 90/70 -> 80 and 30
BRECS = [_with_baselines(RECS[0], 90.0, 30.0), _with_baselines(RECS[1], 70.0, 50.0),
         _with_baselines(RECS[2], 30.0, 10.0)]


def test_baseline_columns_and_verdict(tmp_path):
    from physioemo.evaluation.report import verdicts

    rows = summarize(BRECS)
    assert rows[0]["probe_f1"] == 80.0 and rows[1]["probe_f1"] == 30.0
    assert rows[0]["classic_f1"] == 40.0 and np.isnan(rows[0]["physio_f1"])
    assert rows[2]["probe_f1"] == 55.0 and rows[3]["probe_f1"] == 25.0
    (v,) = verdicts(rows)
    # best non-probe baseline by mean over subjects: classic (40, 10 -> 25) over stratified 20
    assert v["best"] == "classic"
    # HiSTN - classic per subject: 70-40=30, 40-10=30 -> 30 ± 0; - probe: -10, 10 -> 0 ± 10
    assert v["vs_best"] == pytest.approx((30.0, 0.0))
    assert v["vs_probe"] == pytest.approx((0.0, 10.0))
    assert "+30.0 ± 0.0" in v["text"] and "+0.0 ± 10.0" in v["text"]
    assert "best baseline (classic: band DE + logistic regression)" in v["text"]
    assert v["warning"] and "does not beat the shortcut probe" in v["text"]
    assert "does not beat the classic" not in v["text"]
    d = tmp_path / "run"
    d.mkdir()
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in BRECS))
    paths = build_report(d, tmp_path)
    with open(paths["csv"]) as fid:
        table = list(csv.DictReader(fid))
    assert table[0]["probe_f1"] == "80.0000" and table[0]["physio_f1"] == "n/a"
    md = paths["md"].read_text()
    assert "| Probe F1 |" in md and "**55.00 ± 25.00**" in md and "n/a" in md
    assert v["text"] in md
    html = paths["html"].read_text()
    assert "HiSTN beside the baselines" in html
    assert "<p class='warn'>sd · valence · gaussian: HiSTN minus the best baseline" in html
    # per-subject bars, the baseline plot, confusion/curves
    assert len(re.findall("data:image/png;base64,", html)) == 3
    # the results are a real table (not Markdown in <pre>): HiSTN beside every baseline
    tables = _html_tables(html)
    header, *body = tables[-1]
    assert "<pre>" not in html
    assert header[:3] == ["subject", "folds", "F1 (weighted)"] and "Probe F1" in header
    assert [r[0] for r in body] == ["1", "2", "mean ± std (2 subjects)"]
    probe = header.index("Probe F1")
    assert [r[probe] for r in body] == ["80.00", "30.00", "55.00 ± 25.00"]


def _html_tables(text):
    """Every <table> of an HTML page as lists of cell texts (stdlib parser)."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.tables[-1][-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Tables()
    parser.feed(text)
    return parser.tables


def test_a_clear_win_has_no_warning_and_old_results_have_no_baseline_columns(tmp_path):
    from physioemo.evaluation.report import verdicts

    recs = [_with_baselines(RECS[0], 20.0, 30.0, physio=35.0),
            _with_baselines(RECS[2], 25.0, 10.0, physio=15.0)]
    (v,) = verdicts(summarize(recs))
    # physio (35, 15 -> 25) beats classic (20); HiSTN 60 and 40: 25 ± 0 and 37.5 ± 2.5
    assert v["best"] == "physio" and v["vs_best"] == pytest.approx((25.0, 0.0))
    assert v["vs_probe"] == pytest.approx((27.5, 12.5)) and not v["warning"]
    assert "WARNING" not in v["text"]
    assert verdicts(summarize(RECS)) == []
    assert "probe_f1" not in summarize(RECS)[0]
    d = tmp_path / "old"
    d.mkdir()
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECS[:3]))
    paths = build_report(d, tmp_path)
    assert "probe_f1" not in paths["csv"].read_text()
    assert "Probe" not in paths["md"].read_text()
    assert "HiSTN beside the baselines" not in paths["html"].read_text()
