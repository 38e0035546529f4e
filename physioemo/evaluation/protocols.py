"""The DREAMER evaluation protocols of HiSTN (Kuang et al., arXiv 2408.15255, §5).

:func:`run_protocol` runs one protocol for one emotion dimension over a set of subjects and
writes one JSON line per (subject, fold) to ``out_dir/results.jsonl`` as soon as the fold is
done. A rerun with the same ``out_dir`` and settings skips finished folds; a rerun with
different settings is refused. Subjects (and, for ``sd``/``sd-strict``, their folds) run in
parallel processes with ``n_jobs > 1``; every random choice is seeded from ``(seed, subject,
fold)``, so the results do not depend on ``n_jobs`` (bit-identical when each process uses
the same number of torch threads).

Protocols (recipes in :data:`RECIPES`):

``sd``
    The paper's subject-dependent recipe: 10 temporal blocks per clip, within-trial, known
    to be optimistic (neighbouring seconds of one clip are in training and test).
``sd-strict``
    Leak-free subject-dependent: whole clips held out (6 folds: 3 test, 3 validation and 12
    training clips), natural class distribution, no window shared across splits.
``reston1`` / ``reston1-nc``
    Leave-one-subject-out pretraining on the other subjects (with / without the mode label
    correction), then fine-tuning on the first 10 s of each of the test subject's clips and
    testing on the remaining 50 s.
``1on1``
    Pretraining on the previous subject only (subject 1 uses the last one), then as above.
``no-pretrain``
    Only the fine-tuning stage, nothing frozen.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_number, check_option
from ..utils.logging import logger
from .splits import (
    WINDOW_SAMPLES,
    ClipKFold,
    TemporalBlockSplit,
    correct_labels,
    one_on_one_pairs,
    window_starts,
)

PROTOCOLS = ("sd", "sd-strict", "reston1", "reston1-nc", "1on1", "no-pretrain")
DIMENSION_NAMES = ("valence", "arousal", "dominance")
SMOOTHINGS = ("gaussian", "onehot", "uniform")

#: Fine-tuning stage of the subject-independent protocols (§5.2): first 10 s of each clip at
#: stride 32, batch 100 shuffled, class-weighted, smoothed targets, last epoch kept.
STAGE2 = {"epochs": 400, "batch_size": 100, "lr": {0: 1e-3}, "finetune_samples": 1280,
          "stride": 32}

#: Recipe of each protocol (histn-spec §5). ``lr`` maps the first epoch to its rate.
RECIPES = {
    "sd": {"dropout": 0.5, "epochs": 50, "batch_size": 256, "lr": {0: 1e-3, 30: 5e-4},
           "n_blocks": 10, "n_val": 2000, "n_test": 1000},
    "sd-strict": {"dropout": 0.5, "epochs": 50, "batch_size": 256, "lr": {0: 1e-3, 30: 5e-4},
                  "n_splits": 6},
    "reston1": {"dropout": 0.2, "epochs": 100, "batch_size": 120, "lr": {0: 1e-2, 50: 2e-3},
                "stride": 128, "correct": True, "stage2": STAGE2},
    "reston1-nc": {"dropout": 0.2, "epochs": 100, "batch_size": 120,
                   "lr": {0: 1e-2, 50: 2e-3}, "stride": 128, "correct": False,
                   "stage2": STAGE2},
    "1on1": {"dropout": 0.2, "epochs": 100, "batch_size": 120, "lr": {0: 1e-3, 50: 2e-4},
             "stride": 32, "stage2": {**STAGE2, "lr": {0: 1e-3, 200: 2e-4, 350: 1e-4}}},
    "no-pretrain": {"dropout": 0.2, "stage2": STAGE2},
}


def derive_seed(seed, *keys):
    """Derive a 32-bit seed from ``seed`` and integer ``keys`` (independent streams).

    Parameters
    ----------
    seed : int
        Base seed.
    *keys : int
        E.g. subject, fold and a purpose tag.

    Returns
    -------
    seed : int
    """
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def scale_schedule(schedule, recipe_epochs, epochs):
    """Stretch the milestones of a piecewise-constant schedule to ``epochs`` epochs.

    Parameters
    ----------
    schedule : dict of int -> float
        ``{first_epoch: lr}`` for ``recipe_epochs`` epochs.
    recipe_epochs, epochs : int
        Epoch count of the recipe and of the run.

    Returns
    -------
    schedule : dict of int -> float
        Milestone ``k`` moves to ``round(k * epochs / recipe_epochs)``, but never before
        epoch 1 (the first epoch always runs at the initial rate); when two milestones land
        on the same epoch the earlier one is kept.
    """
    if not isinstance(schedule, dict):
        return schedule
    out = {}
    for k in sorted(schedule):
        new = int(round(k * epochs / recipe_epochs))
        out.setdefault(max(new, 1) if k > 0 else new, schedule[k])
    return out


def scale_lr(schedule, lr):
    """Set the first rate of a schedule to ``lr`` and scale the later ones by the same factor.

    Parameters
    ----------
    schedule : dict of int -> float | float
        ``{first_epoch: lr}`` (or a constant rate).
    lr : float
        New initial learning rate.

    Returns
    -------
    schedule : dict of int -> float | float
        E.g. ``scale_lr({0: 1e-3, 30: 5e-4}, 2e-3) == {0: 2e-3, 30: 1e-3}``; ``lr`` equal to
        the first rate returns the schedule unchanged.
    """
    if not isinstance(schedule, dict):
        return float(lr)
    first = schedule[min(schedule)]
    return {k: (float(lr) if v == first else v * (float(lr) / first))
            for k, v in schedule.items()}


#: Bumped whenever the same settings give other numbers (part of the resume guard, so a run
#: folder never mixes folds of two versions). 2: Keras-fan initialisation, Adam eps 1e-7,
#: exactly balanced subject-independent batches, dropout masks from torch's generator.
RESULTS_VERSION = 2

#: Keyword arguments of :func:`run_protocol` that replace recipe entries (see its docstring).
HYPERPARAMS = ("lr", "dropout", "batch_size")


def _main_stage(name, recipe):
    """Return the recipe dict of the stage that ``lr`` and ``batch_size`` act on."""
    return recipe["stage2"] if name == "no-pretrain" else recipe


def _apply_hyperparams(name, recipe, values, overrides):
    """Validate ``lr``/``dropout``/``batch_size`` and return (recipe, recorded values).

    A value equal to the recipe's is recorded as ``None``: it gives the same results, so a
    run made without it may resume with it.
    """
    lr, dropout, batch_size = (values[k] for k in HYPERPARAMS)
    if lr is not None:
        lr = check_number("lr", lr, low=0.0, low_inclusive=False,
                          hint="pass a positive initial learning rate such as 1e-3")
    if dropout is not None:
        dropout = check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False,
                               hint="pass a dropout probability such as 0.5 (0 disables it)")
    if batch_size is not None:
        batch_size = check_number("batch_size", batch_size, low=1, integer=True,
                                  hint="pass a positive number of windows per batch")
    clash = sorted(k for k in HYPERPARAMS if values[k] is not None and k in (overrides or {}))
    if clash:
        raise ParameterError(
            f"{clash} given both as keyword argument(s) and in overrides "
            f"({ {k: overrides[k] for k in clash} }); each may be set only once; drop the "
            "overrides entry or the keyword argument.")
    recipe = copy.deepcopy(recipe)
    stage = _main_stage(name, recipe)
    recorded = {}
    if dropout is not None:
        recorded["dropout"] = None if dropout == recipe["dropout"] else dropout
        recipe["dropout"] = dropout
    if batch_size is not None:
        recorded["batch_size"] = None if batch_size == stage["batch_size"] else batch_size
        stage["batch_size"] = batch_size
    if lr is not None:
        new = scale_lr(stage["lr"], lr)
        recorded["lr"] = None if new == stage["lr"] else lr
        stage["lr"] = new
    return recipe, {k: recorded.get(k) for k in HYPERPARAMS}


def _plain_schedule(schedule):
    if not isinstance(schedule, dict):
        return float(schedule)
    return {str(k): float(v) for k, v in sorted(schedule.items())}


def _hyperparams_record(recipe, trainer, finetune=None):
    """Hyper-parameters a fold was trained with (JSON-safe: schedule keys are strings).

    ``trainer`` is the main stage (SD training, SI pretraining, or the only stage of
    ``no-pretrain``); ``finetune`` the fine-tuning stage of ``reston1``/``1on1``.
    """
    out = {"dropout": float(recipe["dropout"]), "batch_size": int(trainer.batch_size),
           "lr": _plain_schedule(trainer.lr)}
    if finetune is not None:
        out["finetune_batch_size"] = int(finetune.batch_size)
        out["finetune_lr"] = _plain_schedule(finetune.lr)
    return out


def _default_model_fn(n_outputs, dropout, graph, n_channels, n_times):
    from ..models import build_model

    return build_model("histn", n_channels=n_channels, n_times=n_times, n_outputs=n_outputs,
                       graph=graph, dropout=dropout)


def _fingerprint(data, labels):
    h = hashlib.sha1()
    h.update(repr((data.shape, str(data.dtype), labels.shape)).encode())
    h.update(np.ascontiguousarray(labels).tobytes())
    flat = data.reshape(-1)
    step = max(1, flat.size // 4096)
    h.update(np.ascontiguousarray(flat[::step]).tobytes())
    return h.hexdigest()[:16]


class ResultStore:
    """Append-only JSON-lines store of per-(subject, fold) results with a settings guard.

    Parameters
    ----------
    out_dir : str | Path
        Directory holding ``results.jsonl`` and ``settings.json``.
    settings : dict
        Settings the results depend on; a store created with other settings is refused.
    """

    def __init__(self, out_dir, settings):
        self.out_dir = Path(out_dir)
        self.settings = settings

    @property
    def path(self):
        """Path of ``results.jsonl``."""
        return self.out_dir / "results.jsonl"

    def open(self):
        """Create the directory and settings file, or check the existing settings.

        Returns
        -------
        self : ResultStore
        """
        from ..utils.config import atomic_write_text

        self.out_dir.mkdir(parents=True, exist_ok=True)
        spath = self.out_dir / "settings.json"
        plain = json.loads(json.dumps(self.settings, default=str))
        if spath.exists():
            old = json.loads(spath.read_text())
            if "normalization" in plain:  # runs from before the forms existed were paper
                old.setdefault("normalization", "paper")
            diff = sorted(k for k in set(old) | set(plain) if old.get(k) != plain.get(k))
            if diff and not self.records():  # a run that failed before any result
                logger.info("%s holds no results yet: replacing its settings", self.out_dir)
                atomic_write_text(spath, json.dumps(plain, indent=2, sort_keys=True))
            elif diff:
                detail = "; ".join(f"{k}: {old.get(k)!r} -> {plain.get(k)!r}" for k in diff)
                raise ParameterError(
                    f"{str(self.out_dir)!r} holds results computed with other settings "
                    f"({detail}); a run can only resume with identical settings; use a new "
                    "output directory or the original settings.")
        else:
            atomic_write_text(spath, json.dumps(plain, indent=2, sort_keys=True))
        return self

    def records(self):
        """Return every complete record (a torn last line from a crash is ignored)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("ignoring a truncated line in %s", self.path)
        return out

    def done(self):
        """Set of finished ``(subject, fold)`` pairs (subjects 1-based)."""
        return {(r["subject"], r["fold"]) for r in self.records()}

    def append(self, record):
        """Append one record as a single atomic write (safe across processes)."""
        line = (json.dumps(record, default=_json_default) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - not POSIX
                pass
            size = os.lseek(fd, 0, os.SEEK_END)
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a crash left a torn line: never glue onto it
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def _balanced_fixed(windows, n, seed):
    """``n`` class-balanced windows drawn once (fixed validation/test crops, §5.1)."""
    rng = np.random.default_rng(seed)
    return windows.subset(windows.balanced_sampler(rng)(n))


def _score(trainer, test, n_classes):
    from .metrics import compute_metrics, confusion_matrix

    t0 = time.perf_counter()
    proba = trainer.predict_proba(test)
    metrics = compute_metrics(test.y, proba)
    cm = confusion_matrix(test.y, proba, n_classes=n_classes)
    return ({k: float(v) for k, v in metrics.items()}, np.asarray(cm).tolist(),
            time.perf_counter() - t0)


def _work_units(name, recipe, subjects, folds, n_jobs):
    """Return the jobs' work: ``(subject, folds or None)`` pairs.

    Whole subjects, or for ``sd`` and ``sd-strict`` with several jobs single folds: the
    folds of a subject are independent (each starts from the subject's initial weights with
    its own seed), so sharing them out lets one subject use every job.
    """
    if n_jobs == 1 or name not in ("sd", "sd-strict"):
        return [(s, None) for s in subjects]
    n_folds = recipe["n_blocks"] if name == "sd" else recipe["n_splits"]
    return [(s, [f]) for s in subjects for f in (range(n_folds) if folds is None else folds)]


def _subject_folds(ctx, subject, only_folds=None):
    """Train and test every fold of one subject; write each record as it is done.

    ``only_folds`` (subject-dependent protocols) runs just those folds, as one of several
    processes that share a subject's folds; the subject's checkpoint is then written by
    the process that runs its last fold, as a single process would.
    """
    import torch

    from ..training.trainer import Trainer, WindowSet

    p = ctx
    protocol, recipe = p["protocol"], p["recipe"]
    data, labels, dim = p["data"], p["labels"], p["dim"]
    n_subjects, n_clips, n_channels, n_times = data.shape
    n_classes = p["n_classes"]
    store = ResultStore(p["out_dir"], p["settings"]) if p["out_dir"] is not None else None
    done = p["done"]
    torch.set_num_threads(p["n_threads"])
    # seeds follow DREAMER's subject number, not the position in `data`: a subject's
    # results do not depend on which other subjects the file or the run holds
    num = int(p["numbers"][subject])
    torch.manual_seed(derive_seed(p["seed"], num, 0))
    model = p["model_fn"](n_classes, recipe["dropout"], p["graph"], n_channels,
                          WINDOW_SAMPLES)
    init_state = copy.deepcopy(model.state_dict())  # every fold starts from these weights
    common = {"smoothing": p["smoothing"], "sigma": p["sigma"], "n_classes": n_classes,
              "device": p["device"], "n_threads": p["n_threads"], "verbose": p["verbose"]}
    y_s = labels[subject, :, dim]
    records = []
    last_model = None

    if protocol in ("sd", "sd-strict"):
        if protocol == "sd":
            splitter = TemporalBlockSplit(recipe["n_blocks"], WINDOW_SAMPLES)
            n_folds = recipe["n_blocks"]
        else:
            splitter = ClipKFold(recipe["n_splits"], True, derive_seed(p["seed"], num, 1))
            n_folds = recipe["n_splits"]
            clip_folds = list(splitter.split_clips(n_clips))
        all_folds = list(range(n_folds) if p["folds"] is None else p["folds"])
        folds = all_folds if only_folds is None else only_folds
        epochs = p["epochs"] or recipe["epochs"]
        lr = scale_schedule(recipe["lr"], recipe["epochs"], epochs)
        for fold in folds:
            if fold >= n_folds:
                raise ParameterError(f"fold={fold} does not exist for protocol {protocol!r} "
                                     f"(folds 0..{n_folds - 1}); pick folds in that range.")
            if (num, fold) in done:
                continue
            fseed = derive_seed(p["seed"], num, fold, 2)
            model.load_state_dict(init_state)
            if protocol == "sd":
                tr, va, te = splitter.fold(fold, n_times)
                train = WindowSet.from_starts(data[subject], y_s, tr)
                val = _balanced_fixed(WindowSet.from_starts(data[subject], y_s, va),
                                      recipe["n_val"], derive_seed(fseed, 3))
                test = _balanced_fixed(WindowSet.from_starts(data[subject], y_s, te),
                                       recipe["n_test"], derive_seed(fseed, 4))
                split_info = {"test_block": fold, "val_block": (fold - 1) % n_folds}
            else:
                tr_c, va_c, te_c = clip_folds[fold]
                every = window_starts(n_times, WINDOW_SAMPLES, 1)
                nonover = window_starts(n_times, WINDOW_SAMPLES)
                train = WindowSet.from_starts(data[subject], y_s, every, rows=tr_c)
                val = WindowSet.from_starts(data[subject], y_s, nonover, rows=va_c)
                test = WindowSet.from_starts(data[subject], y_s, nonover, rows=te_c)
                split_info = {"train_clips": tr_c.tolist(), "val_clips": va_c.tolist(),
                              "test_clips": te_c.tolist()}
            trainer = Trainer(model, epochs=epochs, batch_size=recipe["batch_size"], lr=lr,
                              steps_per_epoch=p["steps_per_epoch"],
                              sampling="balanced", select="val_loss", seed=fseed,
                              desc=f"{protocol} S{num:02d} f{fold}", **common)
            trainer.fit(train, val)
            metrics, cm, test_s = _score(trainer, test, n_classes)
            # the validation block scored by the same (selected) model: what tuning optimises
            val_metrics = _score(trainer, val, n_classes)[0]
            rec = _record(p, subject, fold, fseed, metrics, cm, trainer, None, test_s,
                          val_metrics=val_metrics,
                          n_train=len(train), n_val=len(val), n_test=len(test),
                          hyperparams=_hyperparams_record(recipe, trainer), **split_info,
                          **_baselines(p, subject, train, test, fseed))
            records.append(rec)
            if store is not None:
                store.append(rec)
            if fold == all_folds[-1]:
                last_model = (model, fold)
    else:
        fold = 0
        if (num, fold) in done:
            return records
        fseed = derive_seed(p["seed"], num, fold, 2)
        stage2 = recipe["stage2"]
        pre = None
        flat = data.reshape(n_subjects * n_clips, n_channels, n_times)
        if protocol != "no-pretrain":
            epochs1 = p["epochs"] or recipe["epochs"]
            if protocol == "1on1":
                pretrain_subjects = np.array([p["pairs"][subject]])
                y_pre = labels[pretrain_subjects, :, dim]
            else:
                pretrain_subjects = np.array([s for s in range(n_subjects) if s != subject])
                y_pre = labels[pretrain_subjects, :, dim]
                if recipe["correct"]:
                    y_pre = correct_labels(y_pre, np.arange(len(pretrain_subjects)))
            row_labels = np.zeros(n_subjects * n_clips, dtype=np.int64)
            rows = (pretrain_subjects[:, None] * n_clips + np.arange(n_clips)).ravel()
            row_labels[rows] = y_pre.ravel()
            starts = window_starts(n_times, WINDOW_SAMPLES, recipe["stride"])
            train1 = WindowSet.from_starts(flat, row_labels, starts, rows=rows)
            pre = Trainer(model, epochs=epochs1, batch_size=recipe["batch_size"],
                          lr=scale_schedule(recipe["lr"], recipe["epochs"], epochs1),
                          steps_per_epoch=p["steps_per_epoch"],
                          sampling="balanced-exact", select="last",
                          seed=derive_seed(fseed, 5),
                          desc=f"{protocol} S{num:02d} pretrain", **common)
            pre.fit(train1)
        epochs2 = p["finetune_epochs"] or (p["epochs"] if protocol == "no-pretrain" else None)
        epochs2 = epochs2 or stage2["epochs"]
        fine_starts = window_starts(n_times, WINDOW_SAMPLES, stage2["stride"],
                                    stop=stage2["finetune_samples"])
        train2 = WindowSet.from_starts(data[subject], y_s, fine_starts)
        test = WindowSet.from_starts(data[subject], y_s, window_starts(
            n_times, WINDOW_SAMPLES, start=stage2["finetune_samples"]))
        trainer = Trainer(model, epochs=epochs2, batch_size=stage2["batch_size"],
                          lr=scale_schedule(stage2["lr"], stage2["epochs"], epochs2),
                          sampling="shuffle", select="last", class_weighting=True,
                          freeze_first_conv=protocol != "no-pretrain", seed=fseed,
                          desc=f"{protocol} S{num:02d} finetune", **common)
        trainer.fit(train2)
        metrics, cm, test_s = _score(trainer, test, n_classes)
        extra = {}
        if protocol == "1on1":
            extra["pretrain_subject"] = int(p["numbers"][p["pairs"][subject]])
        hyper = (_hyperparams_record(recipe, trainer) if pre is None
                 else _hyperparams_record(recipe, pre, finetune=trainer))
        rec = _record(p, subject, fold, fseed, metrics, cm, trainer, pre, test_s,
                      n_train=len(train2), n_test=len(test), hyperparams=hyper, **extra,
                      **_baselines(p, subject, train2, test, fseed))
        records.append(rec)
        if store is not None:
            store.append(rec)
        last_model = (model, fold)

    if p["save_checkpoints"] and last_model is not None and p["out_dir"] is not None:
        from ..models import save_checkpoint

        ckpt_dir = Path(p["out_dir"]) / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt_dir / f"subject{num:02d}.pt", last_model[0], extra={
            "protocol": protocol, "dimension": p["dimension"], "subject": num,
            "fold": last_model[1], "seed": p["seed"], "smoothing": p["smoothing"],
            "ch_names": list(p["ch_names"]), "sfreq": 128.0,
            "window_samples": WINDOW_SAMPLES, "n_classes": n_classes,
            "normalization": p["normalization"]})
    return records


def _curve(history):
    """Per-epoch history as JSON-safe lists (NaN, e.g. no validation, becomes null)."""
    return {k: [None if np.isnan(v) else float(v) for v in vals] for k, vals in history.items()}


def _baselines(p, subject, train, test, fseed):
    """``{"baselines": ...}`` for a record (see :mod:`.baselines`), or ``{}`` when off."""
    if not p["baselines"]:
        return {}
    from .baselines import run_baselines

    peaks = None if p["ecg"] is None else p["ecg"][subject]
    return {"baselines": run_baselines(train, test, seed=derive_seed(fseed, 6),
                                       r_peaks=peaks, n_classes=p["n_classes"])}


def _record(p, subject, fold, fseed, metrics, cm, trainer, pre, test_s, **extra):
    rec = {"protocol": p["protocol"], "dimension": p["dimension"],
           "subject": int(p["numbers"][subject]),
           "fold": fold, "smoothing": p["smoothing"], "sigma": p["sigma"],
           "graph": p["graph"], "normalization": p["normalization"], "seed": p["seed"],
           "fold_seed": fseed, "metrics": metrics,
           "confusion": cm,
           "curve": _curve(trainer.history_),
           "best_epoch": trainer.best_epoch_, "train_seconds": trainer.fit_seconds_,
           "test_seconds": test_s}
    if pre is not None:
        rec["pretrain_curve"] = _curve(pre.history_)
        rec["pretrain_seconds"] = pre.fit_seconds_
    rec.update(extra)
    return rec


def _baseline_setting(baselines, ecg):
    if not baselines:
        return None
    from .baselines import BASELINES_VERSION

    return {"version": BASELINES_VERSION, "physio": ecg is not None}


def run_protocol(name, data, labels, *, dimension="valence", subjects=None, epochs=None,
                 finetune_epochs=None, steps_per_epoch=None, lr=None, dropout=None,
                 batch_size=None, smoothing="gaussian", sigma=0.5, graph="G0", seed=0,
                 out_dir=None, n_jobs=1, n_threads=None, device="cpu", folds=None,
                 save_checkpoints=True, model_fn=None, subject_numbers=None, overrides=None,
                 verbose=None, data_id=None, baselines=True, ecg=None,
                 normalization="paper"):
    """Run one DREAMER protocol and return its per-(subject, fold) results.

    Parameters
    ----------
    name : {"sd", "sd-strict", "reston1", "reston1-nc", "1on1", "no-pretrain"}
        The protocol (see the module docstring and :data:`RECIPES`).
    data : ndarray, shape (n_subjects, n_clips, n_channels, n_times)
        Preprocessed clips (``load_preprocessed``), float32.
    labels : ndarray of int, shape (n_subjects, n_clips, 3)
        Classes 0..4 for valence, arousal, dominance.
    dimension : {"valence", "arousal", "dominance"}
        Which self-report to predict.
    subjects : list of int | None
        0-based subjects to evaluate (test subjects for the subject-independent protocols,
        whose pretraining still uses every subject in ``data``); ``None`` means all.
    epochs : int | None
        Overrides the recipe's epoch count of the main (SD) or pretraining (SI) stage, and
        of the only stage of ``no-pretrain``; learning-rate milestones are stretched
        proportionally. ``None`` keeps the recipe.
    finetune_epochs : int | None
        Overrides the 400 fine-tuning epochs of ``reston1``, ``reston1-nc`` and ``1on1``.
    steps_per_epoch : int | None
        Overrides the class-balanced batches per epoch of the main (SD) or pretraining (SI)
        stage (the recipe: ``n_training_windows // batch_size``); for quick runs.
    lr : float | None
        Initial learning rate of the main (SD) or pretraining (SI) stage, and of the only
        stage of ``no-pretrain``. Later milestones of the recipe's schedule are scaled by
        the same factor, so ``lr=1e-3`` reproduces ``sd`` ({0: 1e-3, 30: 5e-4}) and
        ``lr=2e-3`` gives {0: 2e-3, 30: 1e-3}; the recipes start at 1e-3 (``sd``,
        ``sd-strict``, ``1on1``, ``no-pretrain``) and 1e-2 (``reston1``, ``reston1-nc``).
        The fine-tuning stage of ``reston1``/``reston1-nc``/``1on1`` keeps its schedule.
        ``None`` keeps the recipe.
    dropout : float | None
        Dropout probability of the model, in [0, 1) (the recipes: 0.5 for ``sd`` and
        ``sd-strict``, 0.2 for the subject-independent protocols); passed to ``model_fn``.
        ``None`` keeps the recipe.
    batch_size : int | None
        Windows per batch of the stage ``lr`` acts on (the recipes: 256 SD, 120 SI
        pretraining, 100 for ``no-pretrain``). With the recipe's steps per epoch
        (``steps_per_epoch=None``) an epoch still covers about as many windows as there are
        training windows. ``None`` keeps the recipe.
    smoothing : {"gaussian", "onehot", "uniform"}
        Training targets.
    sigma : float
        Width of the Gaussian smoothing.
    graph : {"G0", "G1", "G2"}
        HiSTN region graph.
    seed : int
        Base seed; every (subject, fold) derives its own seeds from it.
    out_dir : str | Path | None
        Where ``results.jsonl``, ``settings.json`` and ``checkpoints/`` go; ``None`` keeps
        results in memory only (no resume).
    n_jobs : int
        Processes working in parallel: on subjects, and for ``sd``/``sd-strict`` on the
        folds of each subject (so one subject also uses every process).
    n_threads : int | None
        torch threads per process; ``None`` means ``cpu_count // n_jobs`` (at least 1).
    device : {"cpu", "cuda"}
        Where to train.
    folds : list of int | None
        Restrict to these folds (SD protocols); ``None`` means all.
    save_checkpoints : bool
        Save each subject's last trained model to ``out_dir/checkpoints/subjectNN.pt``.
    model_fn : callable | None
        ``model_fn(n_outputs, dropout, graph, n_channels, n_times) -> nn.Module``; ``None``
        builds HiSTN.
    subject_numbers : array-like of int | None
        DREAMER's 1-based number of each subject in ``data`` (used in the records, file
        names and resume keys); ``None`` means ``1..n_subjects``.
    overrides : dict | None
        Replace entries of the protocol's recipe (:data:`RECIPES`), e.g.
        ``{"batch_size": 64, "lr": {0: 3e-3}, "n_val": 300, "n_test": 300}`` for quick runs
        and tests. Recorded in the settings; results are then not the paper's recipe.
        An entry may not also be given as ``lr``, ``dropout`` or ``batch_size``.
    verbose : bool | None
        Progress bars (``None`` follows the CLI's ``-q``).
    data_id : str | None
        Identifies the data in the resume guard (``settings.json``); ``None`` means a
        fingerprint of ``data`` and ``labels``. Pass one that does not depend on which
        subjects were loaded (the source file's content hash) when ``data`` holds only
        the subjects evaluated, so that a run resumes with other subjects.
    baselines : bool
        Also fit and score the baselines and the shortcut probe of
        :mod:`physioemo.evaluation.baselines` on each fold's training and test windows
        (fitted on the fine-tuning windows for the subject-independent protocols), stored
        under ``record["baselines"]``.
    ecg : list of list of ndarray of int | None
        ``ecg[i][j]``: R peaks of clip ``j`` of subject ``i`` of ``data``
        (:func:`physioemo.datasets.cache.load_r_peaks`), for the ``physio`` baseline;
        ``None`` records it as not available.
    normalization : {"paper", "causal"}
        The form of :mod:`physioemo.datasets.preprocessing` that ``data`` was preprocessed
        with (``load_preprocessed(..., normalization=...)``); not applied here, but recorded
        in the settings (a run resumes only with the same form), in every record and in
        each checkpoint, whose ``predict``/live use then follows it.

    Returns
    -------
    records : list of dict
        One record per (subject, fold) of the requested subjects and folds, including those
        found finished in ``out_dir``; sorted by subject then fold. ``hyperparams`` holds
        the dropout, batch size and learning-rate schedule (epoch -> rate, after stretching
        to ``epochs``) the fold was trained with. ``metrics`` scores the test block;
        for ``sd``/``sd-strict``, ``val_metrics`` (same keys and units) scores the
        validation block with the same model (the weights selected on it), which is what
        ``physioemo tune`` optimises.

    Notes
    -----
    ``lr``, ``dropout`` and ``batch_size`` are part of the settings in
    ``out_dir/settings.json`` (``None`` when they equal the recipe's, since the results are
    then identical), so a rerun with other values into the same ``out_dir`` is refused
    rather than mixing folds trained with different hyper-parameters. The same holds for
    the baselines: ``settings["baselines"]`` is ``None`` when they are off (as in runs made
    before they existed) and otherwise records their version and whether ECG was given, so
    a run resumes only with the same choice and every fold of it has the same baselines.
    """
    check_option("name", name, PROTOCOLS)
    check_option("dimension", dimension, DIMENSION_NAMES)
    check_option("smoothing", smoothing, SMOOTHINGS)
    check_option("graph", graph, ("G0", "G1", "G2"))
    check_option("device", device, ("cpu", "cuda"))
    from ..datasets.preprocessing import check_form

    normalization = check_form(normalization)
    seed = check_number("seed", seed, low=0, integer=True)
    n_jobs = check_number("n_jobs", n_jobs, low=1, integer=True)
    sigma = check_number("sigma", sigma, low=0, low_inclusive=False)
    for key, val in (("epochs", epochs), ("finetune_epochs", finetune_epochs),
                     ("steps_per_epoch", steps_per_epoch)):
        if val is not None:
            check_number(key, val, low=1, integer=True)
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.ndim != 4:
        raise DataError(f"data must have shape (n_subjects, n_clips, n_channels, n_times), got "
                        f"{data.shape}; pass the output of load_preprocessed.")
    if labels.shape != data.shape[:2] + (3,):
        raise DataError(f"labels must have shape {data.shape[:2] + (3,)}, got {labels.shape}; "
                        "pass the labels returned with data by load_preprocessed.")
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    n_subjects = data.shape[0]
    if name in ("reston1", "reston1-nc", "1on1") and n_subjects < 2:
        raise DataError(f"protocol {name!r} needs at least 2 subjects in data, got "
                        f"{n_subjects}; load more subjects.")
    subjects = list(range(n_subjects)) if subjects is None else [int(s) for s in subjects]
    bad = [s for s in subjects if not 0 <= s < n_subjects]
    if bad:
        raise ParameterError(f"subjects {bad} do not exist; data holds subjects 0.."
                             f"{n_subjects - 1} (0-based); pick subjects in that range.")
    if baselines:
        from .baselines import check_r_peaks

        ecg = check_r_peaks(ecg, n_subjects, data.shape[1])
    numbers = (np.arange(1, n_subjects + 1) if subject_numbers is None
               else np.asarray(subject_numbers, dtype=np.int64))
    if numbers.shape != (n_subjects,):
        raise ParameterError(f"subject_numbers must hold one number per subject in data "
                             f"({n_subjects}), got shape {numbers.shape}; pass one each.")
    recipe = dict(RECIPES[name])
    if overrides:
        from ..utils.config import check_keys

        check_keys(overrides, recipe, where=f"overrides of protocol {name!r}")
        recipe.update(overrides)
    recipe, hyper = _apply_hyperparams(
        name, recipe, {"lr": lr, "dropout": dropout, "batch_size": batch_size}, overrides)
    n_threads = int(n_threads or max(1, (os.cpu_count() or 1) // n_jobs))
    try:
        from ..datasets.dreamer import EEG_CHANNELS
    except ImportError:  # pragma: no cover - the datasets helper owns this constant
        EEG_CHANNELS = tuple(f"EEG{i}" for i in range(data.shape[2]))

    settings = {"protocol": name, "dimension": dimension, "epochs": epochs,
                "finetune_epochs": finetune_epochs, "steps_per_epoch": steps_per_epoch,
                **hyper, "smoothing": smoothing, "sigma": sigma,
                "graph": graph, "normalization": normalization, "seed": seed,
                "overrides": overrides or None,
                "model": "histn" if model_fn is None else getattr(
                    model_fn, "__qualname__", repr(model_fn)),
                "data": data_id or _fingerprint(data, labels),
                "baselines": _baseline_setting(baselines, ecg),
                "results_version": RESULTS_VERSION}
    done = set()
    if out_dir is not None:
        store = ResultStore(out_dir, settings).open()
        done = store.done()
    ctx = {"protocol": name, "recipe": recipe, "data": data, "labels": labels,
           "dim": DIMENSION_NAMES.index(dimension), "dimension": dimension,
           "n_classes": 5, "out_dir": out_dir, "settings": settings, "done": done,
           "n_threads": n_threads, "seed": seed, "model_fn": model_fn or _default_model_fn,
           "graph": graph, "smoothing": smoothing, "sigma": sigma, "device": device,
           "normalization": normalization,
           "verbose": verbose, "epochs": epochs, "finetune_epochs": finetune_epochs,
           "steps_per_epoch": steps_per_epoch, "folds": folds,
           "save_checkpoints": save_checkpoints and model_fn is None,
           "baselines": bool(baselines), "ecg": ecg if baselines else None,
           "ch_names": EEG_CHANNELS, "numbers": numbers,
           "pairs": (dict((t, pre) for pre, t in one_on_one_pairs(n_subjects))
                     if n_subjects > 1 else {})}
    todo = _work_units(name, recipe, subjects, folds, n_jobs)
    logger.info("protocol %s, %s, %d subject(s), %d job(s) x %d thread(s)", name, dimension,
                len(subjects), n_jobs, n_threads)
    t0 = time.perf_counter()
    if n_jobs == 1 or len(todo) <= 1:
        new = [r for s, f in todo for r in _subject_folds(ctx, s, f)]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=min(n_jobs, len(todo)), backend="loky")(
            delayed(_subject_folds)(ctx, s, f) for s, f in todo)
        new = [r for part in parts for r in part]
    logger.info("protocol %s finished in %.1f s", name, time.perf_counter() - t0)
    if out_dir is None:
        records = new
    else:
        records = ResultStore(out_dir, settings).records()
    wanted = {int(numbers[s]) for s in subjects}
    records = [r for r in records if r["subject"] in wanted
               and (folds is None or r["fold"] in set(folds))]
    return sorted(records, key=lambda r: (r["subject"], r["fold"]))
