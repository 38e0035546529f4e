"""Tables and a self-contained HTML report of protocol results.

Per-(subject, fold) records (as written by :func:`~physioemo.evaluation.protocols.run_protocol`)
are averaged over folds per subject, then summarised as mean ± std over subjects (NumPy
``ddof=0``), as in histn-spec §4. The paper's numbers (Kuang et al., arXiv 2408.15255) are
shown beside ours and labelled as the paper's.

When the records hold baselines (:mod:`physioemo.evaluation.baselines`), their weighted F1
are extra columns (``<name>_f1``) and :func:`verdicts` gives one sentence per protocol,
dimension and targets: HiSTN minus the best baseline and HiSTN minus the shortcut probe,
per subject, as mean ± std over subjects. HiSTN is said to beat one only when that mean
difference is positive and larger than its spread (std over subjects); otherwise the
sentence carries a WARNING. Records without baselines (older runs) give the tables as before.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..exceptions import DataError
from ..utils.config import atomic_write_text

#: Metrics in the tables: key -> column title.
METRICS = {"weighted_f1": "F1 (weighted)", "accuracy": "Accuracy", "top2_accuracy": "Top-2",
           "tri_p": "Tri-P", "seq2hr": "Seq2HR"}

#: Baselines in the tables: name -> column title (their weighted F1, in %).
BASELINE_TITLES = {"majority": "Majority F1", "stratified": "Stratified F1",
                   "classic": "DE+LogReg F1", "physio": "HR/HRV+LogReg F1",
                   "probe": "Probe F1"}
_DESCRIBED = {"majority": "majority class", "stratified": "stratified guessing",
              "classic": "band DE + logistic regression",
              "physio": "heart rate/HRV + logistic regression"}

#: Mean weighted F1 (%) reported by the paper (not ours): (protocol, dimension) -> value.
PAPER_F1 = {("sd", "valence"): 96.82, ("sd", "arousal"): 95.62,
            ("reston1", "valence"): 78.34, ("reston1", "arousal"): 81.59}


def load_results(run_dirs):
    """Read the records of one or more run directories.

    Parameters
    ----------
    run_dirs : str | Path | list of (str | Path)
        Directories holding ``results.jsonl``.

    Returns
    -------
    records : list of dict
    """
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    records = []
    for d in run_dirs:
        path = Path(d) / "results.jsonl"
        if not path.exists():
            raise DataError(f"no results in {str(d)!r}: {str(path)!r} does not exist; run "
                            "`physioemo evaluate` into that directory first.")
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _key(r):
    return (r["protocol"], r["dimension"], r["smoothing"])


def summarize(records):
    """Average folds per subject, then mean ± std over subjects.

    Parameters
    ----------
    records : list of dict
        Per-(subject, fold) records.

    Returns
    -------
    rows : list of dict
        One row per (protocol, dimension, smoothing, subject) with the fold means and
        ``n_folds``, followed for each (protocol, dimension, smoothing) by a ``"mean"`` and
        a ``"std"`` row (over subjects, ddof=0); subject is ``"mean"`` / ``"std"`` there.
        Groups whose records hold baselines also have ``<name>_f1`` for every name of
        :data:`BASELINE_TITLES` (NaN where a baseline was not available).
    """
    groups = defaultdict(lambda: defaultdict(list))
    with_baselines = defaultdict(bool)
    for r in records:
        groups[_key(r)][r["subject"]].append({**r["metrics"], **_baseline_f1(r)})
        with_baselines[_key(r)] |= "baselines" in r
    rows = []
    for key in sorted(groups):
        cols = list(METRICS) + ([f"{b}_f1" for b in BASELINE_TITLES]
                                if with_baselines[key] else [])
        per_subject = []
        for subject in sorted(groups[key]):
            ms = groups[key][subject]
            row = dict(zip(("protocol", "dimension", "smoothing"), key, strict=True))
            row.update(subject=subject, n_folds=len(ms))
            for m in cols:
                row[m] = float(np.mean([x.get(m, np.nan) for x in ms]))
            per_subject.append(row)
        rows.extend(per_subject)
        for stat, fn in (("mean", np.mean), ("std", np.std)):
            row = dict(zip(("protocol", "dimension", "smoothing"), key, strict=True))
            row.update(subject=stat, n_folds=len(per_subject))
            for m in cols:
                row[m] = float(fn([x[m] for x in per_subject]))
            rows.append(row)
    return rows


def _baseline_f1(record):
    """``{"<name>_f1": weighted F1}`` of a record's baselines (NaN when not available)."""
    base = record.get("baselines")
    if not base:
        return {}
    return {f"{b}_f1": (float(base[b]["metrics"]["weighted_f1"])
                        if b in base and "metrics" in base[b] else np.nan)
            for b in BASELINE_TITLES}


def _diff(group, col):
    """Mean and std over subjects of HiSTN's weighted F1 minus ``col``."""
    d = np.array([r["weighted_f1"] - r[col] for r in group])
    return float(np.mean(d)), float(np.std(d))


def verdicts(rows):
    """One plain sentence per (protocol, dimension, smoothing) that has baselines.

    Parameters
    ----------
    rows : list of dict
        From :func:`summarize`.

    Returns
    -------
    verdicts : list of dict
        ``{"key": (protocol, dimension, smoothing), "text": str, "warning": bool,
        "best": name, "vs_best": (mean, std), "vs_probe": (mean, std)}``: HiSTN's weighted
        F1 minus the best baseline's (the non-probe baseline with the highest mean over
        subjects) and minus the probe's, per subject, then mean and std over subjects
        (ddof=0), in F1 points. ``warning`` when either mean is not above its std.
    """
    by_key = defaultdict(list)
    for r in rows:
        if r["subject"] not in ("mean", "std") and "probe_f1" in r:
            by_key[(r["protocol"], r["dimension"], r["smoothing"])].append(r)
    out = []
    for key, group in by_key.items():
        means = {b: np.mean([r[f"{b}_f1"] for r in group]) for b in BASELINE_TITLES
                 if b != "probe"}
        means = {b: m for b, m in means.items() if np.isfinite(m)}
        best = max(means, key=means.get)
        vs_best, vs_probe = _diff(group, f"{best}_f1"), _diff(group, "probe_f1")
        n = len(group)
        text = (f"{' · '.join(key)}: HiSTN minus the best baseline ({best}: "
                f"{_DESCRIBED[best]}) is {vs_best[0]:+.1f} ± {vs_best[1]:.1f} "
                f"weighted-F1 points, HiSTN minus the shortcut probe is "
                f"{vs_probe[0]:+.1f} ± {vs_probe[1]:.1f} (mean ± std over {n} "
                f"subject{'s' if n != 1 else ''}).")
        warn = []
        if not vs_best[0] > vs_best[1]:
            warn.append(f"HiSTN does not beat the {best} baseline by more than its spread "
                        "over subjects")
        if not vs_probe[0] > vs_probe[1]:
            warn.append("HiSTN does not beat the shortcut probe (channel means and slopes "
                        "alone), so this protocol may measure clip identity, not emotion")
        if warn:
            text += " WARNING: " + "; ".join(warn) + "."
        out.append({"key": key, "text": text, "warning": bool(warn), "best": best,
                    "vs_best": vs_best, "vs_probe": vs_probe})
    return out


def write_tables(records, out_dir):
    """Write ``results.csv`` and ``results.md`` (per subject and mean ± std).

    Parameters
    ----------
    records : list of dict
        Per-(subject, fold) records.
    out_dir : str | Path
        Output directory.

    Returns
    -------
    paths : tuple of Path
        The CSV and Markdown files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarize(records)
    cols = ["protocol", "dimension", "smoothing", "subject", "n_folds", *METRICS]
    cols += [f"{b}_f1" for b in BASELINE_TITLES if any(f"{b}_f1" in r for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (("n/a" if np.isnan(v) else f"{v:.4f}") if isinstance(v, float)
                             else v) for k, v in row.items()})
    csv_path = out_dir / "results.csv"
    atomic_write_text(csv_path, buf.getvalue())
    md_path = out_dir / "results.md"
    atomic_write_text(md_path, _markdown(rows))
    return csv_path, md_path


def _table_groups(rows):
    """One table per (protocol, dimension, smoothing): what Markdown and HTML both show.

    Yields ``(key, titles, cells, mean_cells, verdict, paper)``: the column titles after
    "subject" and "folds", one list of cell strings per subject, the mean ± std cells, the
    verdict sentence (or None) and the paper's F1 (or None).
    """
    by_key = defaultdict(list)
    for row in rows:
        by_key[(row["protocol"], row["dimension"], row["smoothing"])].append(row)
    said = {v["key"]: v["text"] for v in verdicts(rows)}
    for key, group in by_key.items():
        cols = dict(METRICS)
        if "probe_f1" in group[0]:
            cols.update({f"{b}_f1": t for b, t in BASELINE_TITLES.items()})
        stats = {r["subject"]: r for r in group if r["subject"] in ("mean", "std")}
        cells = [[str(r["subject"]), str(r["n_folds"]), *(_num(r[m]) for m in cols)]
                 for r in group if r["subject"] not in ("mean", "std")]
        mean_cells = [f"mean ± std ({stats['mean']['n_folds']} subjects)", "",
                      *(f"{_num(stats['mean'][m])} ± {_num(stats['std'][m])}"
                        for m in cols)]
        yield key, list(cols.values()), cells, mean_cells, said.get(key), PAPER_F1.get(key[:2])


def _markdown(rows):
    lines = []
    for (protocol, dimension, smoothing), titles, cells, mean_cells, verdict, paper in \
            _table_groups(rows):
        lines.append(f"### {protocol} · {dimension} · {smoothing} targets\n")
        lines.append("| subject | folds | " + " | ".join(titles) + " |")
        lines.append("|---" * (2 + len(titles)) + "|")
        lines.extend("| " + " | ".join(c) + " |" for c in cells)
        lines.append("| " + " | ".join(f"**{c}**" if c else c for c in mean_cells) + " |")
        if verdict is not None:
            lines.append(f"\n{verdict}")
        if paper is not None:
            lines.append(f"\nPaper's reported mean weighted F1 for {protocol} {dimension} "
                         f"(Kuang et al. 2024, not ours): {paper:.2f} %.")
        lines.append("")
    return "\n".join(lines) + "\n"


def _html_tables(rows):
    """Return the results as real HTML tables (per subject, then mean ± std in bold)."""
    out = []
    esc = html.escape
    for key, titles, cells, mean_cells, _, _ in _table_groups(rows):
        out.append(f"<h3>{esc(' · '.join(key))} targets</h3><table><tr><th>subject</th>"
                   "<th>folds</th>" + "".join(f"<th>{esc(t)}</th>" for t in titles)
                   + "</tr>")
        out.extend("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                   for row in cells)
        out.append("<tr>" + "".join(f"<td><b>{esc(c)}</b></td>" for c in mean_cells)
                   + "</tr></table>")
    return "\n".join(out)


def _num(v):
    return "n/a" if np.isnan(v) else f"{v:.2f}"


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return ("<img src='data:image/png;base64,"
            + base64.b64encode(buf.getvalue()).decode() + "'/>")


def _plots(records, rows):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    parts = []
    groups = defaultdict(list)
    for r in records:
        groups[_key(r)].append(r)
    for key, recs in sorted(groups.items()):
        title = " · ".join(key)
        subj = [r for r in rows if (r["protocol"], r["dimension"], r["smoothing"]) == key
                and r["subject"] not in ("mean", "std")]
        # per-subject bars
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(subj) + 2), 3))
        x = np.arange(len(subj))
        for i, m in enumerate(("weighted_f1", "seq2hr")):
            ax.bar(x + (i - 0.5) * 0.4, [s[m] for s in subj], 0.4, label=METRICS[m])
        ax.set_xticks(x, [str(s["subject"]) for s in subj])
        ax.set_xlabel("subject")
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.axhline(20, color="gray", lw=0.8, ls=":", label="chance (5 classes)")
        ax.legend(fontsize=7)
        ax.set_title(f"{title}: per subject (mean over folds)")
        parts.append(f"<h3>{html.escape(title)}</h3>" + _png(fig))
        if "probe_f1" in subj[0]:
            parts.append(_baseline_plot(plt, title, subj, rows, key))
        # summed confusion matrix + learning curves
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        cm = np.sum([np.asarray(r["confusion"]) for r in recs], axis=0)
        axes[0].imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            axes[0].text(j, i, int(v), ha="center", va="center", fontsize=7)
        axes[0].set_xlabel("predicted class")
        axes[0].set_ylabel("true class")
        axes[0].set_title("confusion (all subjects, folds)")
        for r in recs[:12]:
            c = r["curve"]
            axes[1].plot(c["train_loss"], color="C0", alpha=0.5, lw=0.8)
            if not np.all(np.isnan(np.asarray(c["val_loss"], float))):
                axes[1].plot(c["val_loss"], color="C1", alpha=0.5, lw=0.8)
        axes[1].plot([], [], color="C0", label="train (smoothed targets)")
        axes[1].plot([], [], color="C1", label="validation (hard)")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("loss")
        axes[1].legend(fontsize=7)
        axes[1].set_title("learning curves (first 12 folds)")
        parts.append(_png(fig))
    # Gaussian vs one-hot Seq2HR
    pairs = defaultdict(dict)
    for r in rows:
        if r["subject"] not in ("mean", "std"):
            pairs[(r["protocol"], r["dimension"], r["subject"])][r["smoothing"]] = r["seq2hr"]
    both = {k: v for k, v in pairs.items() if "gaussian" in v and "onehot" in v}
    if both:
        keys = sorted(both)
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(keys) + 2), 3))
        x = np.arange(len(keys))
        ax.bar(x - 0.2, [both[k]["onehot"] for k in keys], 0.4, label="one-hot")
        ax.bar(x + 0.2, [both[k]["gaussian"] for k in keys], 0.4, label="Gaussian")
        ax.set_xticks(x, [f"{k[0]} {k[1][:3]} S{k[2]}" for k in keys], rotation=45,
                      fontsize=7)
        ax.set_ylabel("Seq2HR (%)")
        ax.legend(fontsize=7)
        ax.set_title("Gaussian vs one-hot targets: Seq2HR per subject")
        parts.append("<h2>Gaussian vs one-hot label smoothing</h2>" + _png(fig))
    return parts


def _baseline_plot(plt, title, subj, rows, key):
    """Weighted F1 of HiSTN beside every baseline, per subject and overall (mean ± std)."""
    stats = {r["subject"]: r for r in rows
             if (r["protocol"], r["dimension"], r["smoothing"]) == key
             and r["subject"] in ("mean", "std")}
    cols = ["weighted_f1"] + [f"{b}_f1" for b in BASELINE_TITLES]
    labels = ["HiSTN"] + [t[:-3] for t in BASELINE_TITLES.values()]
    groups = [str(s["subject"]) for s in subj] + ["mean ± std"]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(groups) + 3), 3.2))
    x = np.arange(len(groups))
    width = 0.8 / len(cols)
    for i, (c, lab) in enumerate(zip(cols, labels, strict=True)):
        vals = [s[c] for s in subj] + [stats["mean"][c]]
        err = [0.0] * len(subj) + [stats["std"][c]]
        ax.bar(x + (i - (len(cols) - 1) / 2) * width, np.nan_to_num(vals), width,
               yerr=np.nan_to_num(err), label=lab, color=f"C{i}", capsize=2)
    ax.set_xticks(x, groups)
    ax.set_xlabel("subject")
    ax.set_ylabel("weighted F1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title(f"{title}: HiSTN beside the baselines (n/a bars are empty)")
    return _png(fig)


def _paper_table(rows):
    means = {(r["protocol"], r["dimension"], r["smoothing"]): r for r in rows
             if r["subject"] == "mean"}
    stds = {(r["protocol"], r["dimension"], r["smoothing"]): r for r in rows
            if r["subject"] == "std"}
    out = ["<table><tr><th>protocol</th><th>dimension</th><th>targets</th>"
           "<th>ours: F1 mean ± std</th><th>subjects</th>"
           "<th>paper's reported F1 (Kuang et al. 2024, not ours)</th></tr>"]
    for key in sorted(means):
        paper = PAPER_F1.get(key[:2])
        if paper is None and key[0] == "reston1-nc":
            paper_txt = "—"
        else:
            paper_txt = "—" if paper is None else f"{paper:.2f}"
        out.append(f"<tr><td>{key[0]}</td><td>{key[1]}</td><td>{key[2]}</td>"
                   f"<td>{means[key]['weighted_f1']:.2f} ± {stds[key]['weighted_f1']:.2f}</td>"
                   f"<td>{means[key]['n_folds']}</td><td>{paper_txt}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def write_html_report(records, path, *, title="physioemo evaluation", notes=()):
    """Write a self-contained HTML report (tables and base64-embedded PNG plots).

    Parameters
    ----------
    records : list of dict
        Per-(subject, fold) records.
    path : str | Path
        The HTML file to write.
    title : str
        Page title.
    notes : sequence of str
        Lines shown at the top (e.g. a warning that the data were synthetic).

    Returns
    -------
    path : Path
    """
    if not records:
        raise DataError("no results to report; run a protocol first.")
    rows = summarize(records)
    body = [f"<h1>{html.escape(title)}</h1>"]
    for n in notes:
        body.append(f"<p class='warn'>{html.escape(n)}</p>")
    body.append("<p>Weighted F1, accuracy, top-2 (over all 5 classes), Tri-P and Seq2HR in %, "
                "averaged over folds per subject, then mean ± std over subjects (ddof=0). "
                "<b>sd</b> is the paper's within-trial split (optimistic: neighbouring "
                "seconds of a clip are in training and test); <b>sd-strict</b> holds out "
                "whole clips.</p>")
    said = verdicts(rows)
    if said:
        body.append("<h2>HiSTN beside the baselines</h2>")
        body.extend(("<p class='warn'>" if v["warning"] else "<p>")
                    + html.escape(v["text"]) + "</p>" for v in said)
        body.append("<p>Baselines, fitted on each fold's training windows and scored on "
                    "its test windows: majority class, stratified guessing (exact "
                    "expectation), band differential entropy + logistic regression, "
                    "heart rate/HRV + logistic regression, and the shortcut probe "
                    "(per-window channel means and slopes, 5-nearest neighbours).</p>")
    body.append("<h2>Ours beside the paper's reported numbers</h2>" + _paper_table(rows))
    body.append("<h2>Results per subject</h2>" + _html_tables(rows))
    body.extend(_plots(records, rows))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse;font-size:90%}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             ".warn{color:#a00;font-weight:bold}img{max-width:100%}")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{style}</style></head><body>" + "\n".join(body)
           + "</body></html>\n")
    path = Path(path)
    atomic_write_text(path, doc)
    return path


#: settings.json keys that depart from the paper's recipe when they are not null.
RECIPE_CHANGES = ("epochs", "finetune_epochs", "steps_per_epoch", "lr", "dropout",
                  "batch_size", "overrides")


def recipe_notes(run_dirs):
    """One warning per run directory whose settings depart from the paper's recipe.

    Parameters
    ----------
    run_dirs : str | Path | list of (str | Path)
        Directories holding ``settings.json`` (written by ``run_protocol``).

    Returns
    -------
    notes : list of str
    """
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    out = []
    for d in dirs:
        path = Path(d) / "settings.json"
        if not path.exists():
            continue
        settings = json.loads(path.read_text())
        changed = {k: settings[k] for k in RECIPE_CHANGES if settings.get(k) is not None}
        if changed:
            detail = ", ".join(f"{k}={json.dumps(v)}" for k, v in changed.items())
            out.append(f"NOT the paper's recipe in {Path(d).name or d}/ ({detail}): the "
                       "paper's numbers below are not comparable with these.")
    return out


def build_report(run_dirs, out_dir, *, title="physioemo evaluation", notes=()):
    """Read run directories and write ``results.csv``, ``results.md`` and ``report.html``.

    Parameters
    ----------
    run_dirs : str | Path | list of (str | Path)
        Directories holding ``results.jsonl``.
    out_dir : str | Path
        Where the tables and the report go.
    title : str
        Report title.
    notes : sequence of str
        Lines shown at the top of the report.

    Returns
    -------
    paths : dict
        ``{"csv": ..., "md": ..., "html": ...}``.
    """
    records = load_results(run_dirs)
    notes = list(notes) + recipe_notes(run_dirs)
    csv_path, md_path = write_tables(records, out_dir)
    html_path = write_html_report(records, Path(out_dir) / "report.html", title=title,
                                  notes=notes)
    return {"csv": csv_path, "md": md_path, "html": html_path}
