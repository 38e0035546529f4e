"""What a tuning run leaves in ``--out``.

* ``best_config.yaml``: the best trial's configuration, keys are ``physioemo evaluate``
  option names, so ``physioemo evaluate --config best_config.yaml`` accepts it unchanged;
* ``trials.csv``: one row per trial (state, value, parameters, mean validation and test fold
  metrics, retries);
* ``plots/``: optimisation history, parameter importances, parallel coordinates, slices and
  intermediate values, as HTML when plotly is installed and as PNG (matplotlib) otherwise;
* ``study.json``: study name, storage (credentials masked), how to reopen the study, and
  which data the objective used (``objective_data``, ``tuning_subjects``).

The objective value and every intermediate value are validation metrics (the fold's
validation block, or an inner split of the tuning subjects; see
:mod:`physioemo.tuning.objective`); test metrics appear only in the ``test`` columns.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
from optuna.trial import TrialState

from ..utils.config import _plain, atomic_write_text
from ..utils.logging import logger
from .study import count_lineages, retried_from, study_summary

#: Plots written by :func:`write_plots` (Optuna function name -> file stem).
PLOTS = {
    "plot_optimization_history": "optimization_history",
    "plot_param_importances": "param_importances",
    "plot_parallel_coordinate": "parallel_coordinate",
    "plot_slice": "slice",
    "plot_intermediate_values": "intermediate_values",
}


def best_config(study, base_config):
    """Return the best trial's configuration merged over ``base_config``.

    Parameters
    ----------
    study : optuna.Study
        The study (at least one complete trial).
    base_config : dict
        Settings common to every trial (protocol, dimension, fixed parameters, ...).

    Returns
    -------
    config : dict | None
        ``base_config`` updated with the best parameters; ``None`` without complete trials.
    """
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    config = dict(base_config)
    config.update(study.best_trial.params)
    return _plain(config)


def write_best_config(path, config, *, study_name, value, metric, trial_number, notes=()):
    """Write the best configuration as YAML with a provenance header.

    Parameters
    ----------
    path : str | Path
        The file to write.
    config : dict
        Option name -> value.
    study_name : str
        Study it came from.
    value : float
        Its objective value.
    metric : str
        The objective metric.
    trial_number : int
        The best trial.
    notes : sequence of str
        Extra comment lines for the header.
    """
    import yaml

    header = (f"# Best configuration of study {study_name!r}: trial {trial_number}, "
              f"validation {metric} = {value:.4f}\n# Use it with: physioemo evaluate --config "
              f"{Path(path).name} --out DIR\n") + "".join(f"# {n}\n" for n in notes)
    atomic_write_text(path, header + yaml.safe_dump(_plain(config), sort_keys=False))


def trials_table(study, metrics=("weighted_f1", "seq2hr")):
    """Return the study's trials as CSV text.

    Parameters
    ----------
    study : optuna.Study
        The study.
    metrics : sequence of str
        Fold metrics whose mean over recorded folds gets a column, once for the validation
        metrics the objective used (``mean_val_*``) and once for the test metrics that were
        only recorded (``mean_test_*``, empty when the runner gave none).

    Returns
    -------
    text : str
        CSV with a header row; ``n_folds`` counts the folds with validation metrics.
    """
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    header = (["number", "state", "value", "lineage", "retry_of", "n_folds", "duration_s",
               "datetime_start", "datetime_complete"] + [f"param_{n}" for n in names]
              + [f"mean_{kind}_{m}" for kind in ("val", "test") for m in metrics]
              + ["error"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for t in trials:
        by_kind = {kind: [v for k, v in t.user_attrs.items()
                          if isinstance(v, dict) and k.startswith(f"{kind}_")]
                   for kind in ("val", "test")}
        folds = by_kind["val"]
        means = []
        for kind in ("val", "test"):
            for m in metrics:
                vals = [f[m] for f in by_kind[kind] if m in f]
                means.append(f"{np.mean(vals):.6g}" if vals else "")
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else ""
        writer.writerow(
            [t.number, t.state.name, "" if t.value is None else repr(float(t.value)),
             t.user_attrs.get("lineage", t.number), "" if retried_from(t) is None
             else retried_from(t), len(folds), duration,
             t.datetime_start.isoformat() if t.datetime_start else "",
             t.datetime_complete.isoformat() if t.datetime_complete else ""]
            + [t.params.get(n, "") for n in names] + means + [t.user_attrs.get("error", "")])
    return buf.getvalue()


def _plotly_available():
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(study, out_dir):
    """Write the standard Optuna plots.

    Parameters
    ----------
    study : optuna.Study
        The study.
    out_dir : str | Path
        Folder for the plots (created).

    Returns
    -------
    written : list of Path
        The files written (a plot that cannot be drawn, e.g. importances with fewer than
        two complete trials, is skipped with a log message).
    """
    import optuna

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    html = _plotly_available()
    if html:
        import optuna.visualization as vis
    else:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        import optuna.visualization.matplotlib as vis
    for func_name, stem in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)
                fig = getattr(vis, func_name)(study)
            if html:
                path = out_dir / f"{stem}.html"
                fig.write_html(str(path), include_plotlyjs="cdn")
            else:
                path = out_dir / f"{stem}.png"
                figure = fig.figure if hasattr(fig, "figure") else np.ravel(fig)[0].figure
                figure.set_size_inches(max(figure.get_size_inches()[0], 8), 5)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    figure.tight_layout()
                figure.savefig(path, dpi=100)
                plt.close(figure)
            written.append(path)
        except Exception as err:  # not enough trials for this plot, etc.
            logger.info("plot %s skipped: %s", stem, err)
    return written


def write_outputs(study, out_dir, *, base_config, metric, storage, n_trials, plots=True,
                  notes=(), objective_data=None, tuning_subjects=None):
    """Write ``best_config.yaml``, ``trials.csv``, ``plots/`` and ``study.json``.

    Parameters
    ----------
    study : optuna.Study
        The study.
    out_dir : str | Path
        The tuning output folder.
    base_config : dict
        Settings common to every trial, merged under the best parameters.
    metric : str
        The objective metric.
    storage : StorageSpec
        Where the study lives (written masked).
    n_trials : int
        The study's trial budget.
    plots : bool
        Draw the plots.
    notes : sequence of str
        Comment lines for the header of ``best_config.yaml``.
    objective_data : str | None
        Which data the objective's metric was computed on (e.g.
        :data:`~physioemo.tuning.objective.VALIDATION`); written to ``study.json`` and the
        header of ``best_config.yaml``.
    tuning_subjects : list of int | None
        DREAMER numbers of the subjects tuned on (``study.json``).

    Returns
    -------
    summary : dict
        What ``study.json`` holds.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = study_summary(study)
    config = best_config(study, base_config)
    if objective_data is not None:
        notes = [f"Objective: validation {metric} on {objective_data}.", *notes]
    if config is not None:
        best = study.best_trial
        write_best_config(out_dir / "best_config.yaml", config, study_name=study.study_name,
                          value=best.value, metric=metric, trial_number=best.number,
                          notes=notes)
    atomic_write_text(out_dir / "trials.csv", trials_table(study))
    written = write_plots(study, out_dir / "plots") if plots else []
    if storage.kind == "journal":
        reopen = ("from optuna.storages import JournalStorage\n"
                  "from optuna.storages.journal import JournalFileBackend\n"
                  f"study = optuna.load_study(study_name={study.study_name!r}, storage="
                  f"JournalStorage(JournalFileBackend({storage.masked!r})))")
    else:
        reopen = (f"study = optuna.load_study(study_name={study.study_name!r}, "
                  f"storage={storage.masked!r})")
    info = {"study_name": study.study_name, "storage": storage.masked,
            "storage_kind": storage.kind, "direction": study.direction.name.lower(),
            "metric": metric, "objective_data": objective_data,
            "tuning_subjects": tuning_subjects, "n_trials_budget": n_trials,
            "n_lineages": count_lineages(study.get_trials(deepcopy=False)),
            **summary, "best_config": "best_config.yaml" if config is not None else None,
            "plots": [str(p.relative_to(out_dir)) for p in written],
            "reopen": {"python": "import optuna\n" + reopen,
                       "dashboard": f"optuna-dashboard {storage.masked}"}}
    atomic_write_text(out_dir / "study.json", json.dumps(_plain(info), indent=2, default=str))
    return info
