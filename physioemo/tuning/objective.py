"""The tuning objective: a DREAMER protocol run fold by fold, reported to Optuna.

:class:`ProtocolObjective` samples a configuration from a :class:`~.search_space.SearchSpace`,
runs the protocol one (subject, fold) at a time through a *runner* (by default
:class:`ProtocolRunner`, i.e. :func:`physioemo.evaluation.protocols.run_protocol`, the code
behind ``physioemo evaluate``), records every fold's metrics as trial user attributes,
reports the running mean of a **validation** metric after each fold so that pruners can
stop a bad trial early, and returns the mean over subjects of the per-subject mean over
folds of that validation metric.

Which data the objective uses (:data:`VALIDATION` says it in one sentence per protocol):

``sd`` / ``sd-strict``
    The fold's validation block (``sd``: block ``k - 1`` of every clip, 2,000
    class-balanced windows; ``sd-strict``: the fold's 3 validation clips), scored with the
    weights the trainer selected on it (``record["val_metrics"]``). The fold's test block
    (``record["metrics"]``) is stored as the trial attribute ``test_sNN_fF`` and never
    reported to Optuna nor returned.
``reston1`` / ``reston1-nc`` / ``1on1`` / ``no-pretrain``
    An inner leave-one-subject-out split of the *tuning subjects*: the runner's arrays hold
    only the tuning subjects (``physioemo tune --subjects``; the evaluation subjects are not
    loaded), each unit holds one tuning subject out, pretrains on the other tuning subjects
    (``1on1``: the previous tuning subject; ``no-pretrain``: none), fine-tunes on the first
    10 s of each of the held-out subject's clips and scores the remaining 50 s. That score
    is the inner validation (:class:`ProtocolRunner` returns it as ``val_metrics``); the
    subjects evaluated afterwards never reach the runner, neither as held-out subjects nor
    in pretraining. Pretraining pools are smaller than in the final evaluation (the tuning
    subjects minus one instead of 22 subjects), the usual price of a nested split.

A runner's record must carry ``val_metrics``; a record without them is an error, never a
silent fall-back to the test metrics in ``metrics``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
from pathlib import Path

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils.logging import logger

#: Objective metrics (keys of a fold record's ``metrics``) and their direction.
METRICS = {"weighted_f1": "maximize", "macro_f1": "maximize", "accuracy": "maximize",
           "top2_accuracy": "maximize", "tri_p": "maximize", "seq2hr": "maximize"}

#: Subject-independent protocols: tuned with an inner split of the tuning subjects.
SUBJECT_INDEPENDENT = ("reston1", "reston1-nc", "1on1", "no-pretrain")

#: What the objective's validation metric is computed on, per protocol.
VALIDATION = {
    "sd": "the validation block of each fold (block k-1 of every clip, 2,000 class-balanced "
          "windows, the block the trainer selects its epoch on); the test block is never "
          "reported to Optuna",
    "sd-strict": "the 3 validation clips of each fold (the clips the trainer selects its "
                 "epoch on); the 3 test clips are never reported to Optuna",
    **dict.fromkeys(SUBJECT_INDEPENDENT,
                    "an inner leave-one-subject-out split of the tuning subjects: each "
                    "tuning subject in turn is held out (fine-tuned on the first 10 s of its "
                    "clips, scored on the remaining 50 s) after pretraining on the other "
                    "tuning subjects only; the data hold only the tuning subjects, so the "
                    "subjects evaluated afterwards are never seen"),
}

#: run_protocol keyword arguments that the tuner sets itself (never searched).
RESERVED = ("name", "data", "labels", "dimension", "subjects", "seed", "out_dir", "n_jobs",
            "n_threads", "device", "folds", "save_checkpoints", "model_fn", "subject_numbers",
            "verbose", "data_id", "baselines", "ecg")


def searchable_params(accepted_by=None):
    """Keyword arguments of ``run_protocol`` that a search space may set.

    Parameters
    ----------
    accepted_by : iterable of str | None
        Keep only these names too (``physioemo evaluate``'s config keys, so that the best
        configuration is a valid ``evaluate --config`` file).

    Returns
    -------
    names : list of str
        e.g. ``epochs``, ``finetune_epochs``, ``steps_per_epoch``, ``lr``, ``dropout``,
        ``batch_size``, ``smoothing``, ``sigma``, ``graph``.
    """
    from ..evaluation.protocols import run_protocol

    sig = inspect.signature(run_protocol)
    names = [n for n, p in sig.parameters.items()
             if p.kind == p.KEYWORD_ONLY and n not in RESERVED]
    if accepted_by is not None:
        names = [n for n in names if n in set(accepted_by)]
    return names


def n_folds(protocol):
    """Return the folds per subject of a protocol (1 for the subject-independent ones)."""
    from ..evaluation.protocols import RECIPES

    recipe = RECIPES[protocol]
    return int(recipe.get("n_blocks") or recipe.get("n_splits") or 1)


class ProtocolRunner:
    """Run one (subject, fold) of a protocol with :func:`run_protocol`.

    Parameters
    ----------
    protocol : str
        Protocol name (``sd``, ``sd-strict``, ``reston1``, ...).
    data : ndarray, shape (n_subjects, n_clips, n_channels, n_times)
        Preprocessed clips.
    labels : ndarray of int, shape (n_subjects, n_clips, 3)
        Classes 0..4.
    dimension : str
        Emotion dimension.
    seed : int
        Base seed, the same for every trial (trials differ only by hyper-parameters).
    device : str
        ``cpu`` or ``cuda``.
    n_threads : int | None
        torch threads of this worker.
    subject_numbers : array-like of int | None
        DREAMER's 1-based number of each subject in ``data`` (seeds, records and trial
        attribute names follow it); ``None`` means ``1..n_subjects``.

    Notes
    -----
    ``data`` should hold the tuning subjects only: for the subject-independent protocols
    every subject in it is used for pretraining (see the module docstring). A record's
    ``val_metrics`` is the fold's validation block (``sd``, ``sd-strict``) or, for the
    subject-independent protocols, the held-out tuning subject's score (then the record
    has no ``metrics``: within the tuning data there is no separate test set).
    """

    def __init__(self, protocol, data, labels, *, dimension="valence", seed=0, device="cpu",
                 n_threads=None, subject_numbers=None):
        self.protocol = protocol
        self.data = data
        self.labels = labels
        self.dimension = dimension
        self.seed = seed
        self.device = device
        self.n_threads = n_threads
        self.subject_numbers = subject_numbers

    @property
    def validation(self):
        """One sentence saying which data the validation metric is computed on."""
        return VALIDATION[self.protocol]

    def __repr__(self):
        return (f"ProtocolRunner({self.protocol!r}, {self.dimension!r}, "
                f"{self.data.shape[0]} subject(s))")

    def n_folds(self):
        """Folds per subject."""
        return n_folds(self.protocol)

    def __call__(self, config, subject, fold, out_dir=None):
        """Run one fold and return its record (with ``metrics`` in percent).

        Parameters
        ----------
        config : dict
            ``run_protocol`` keyword arguments of this trial.
        subject : int
            0-based subject index into ``data``.
        fold : int
            Fold index.
        out_dir : str | Path | None
            Where run_protocol keeps this fold's results (a retried trial resumes there).

        Returns
        -------
        record : dict
            The fold's record, including ``val_metrics`` (what the objective optimises) and,
            for ``sd``/``sd-strict``, the test block's ``metrics``.
        """
        from ..evaluation.protocols import run_protocol

        folds = [fold] if self.n_folds() > 1 else None
        records = run_protocol(self.protocol, self.data, self.labels,
                               dimension=self.dimension, subjects=[subject], folds=folds,
                               seed=self.seed, device=self.device, n_threads=self.n_threads,
                               out_dir=out_dir, save_checkpoints=False, verbose=False,
                               subject_numbers=self.subject_numbers, baselines=False,
                               **config)
        if len(records) != 1:
            raise DataError(f"run_protocol returned {len(records)} records for subject "
                            f"{subject}, fold {fold}; expected exactly 1; this is a bug, "
                            f"please report it.")
        record = dict(records[0])
        if self.protocol in SUBJECT_INDEPENDENT:
            # the held-out subject is a tuning subject: its score is the inner validation
            record["val_metrics"] = record.pop("metrics")
        return record


def load_runner(spec):
    """Import a custom runner given as ``module:attribute`` or ``path/to/file.py:attribute``.

    The attribute is called with ``(protocol, data, labels, dimension=, seed=, device=,
    n_threads=)`` like :class:`ProtocolRunner` and must return an object with the same
    ``__call__`` and ``n_folds()``. Its records must carry ``val_metrics`` (scores on
    data that is neither a test block nor a subject evaluated later); the objective
    optimises those and refuses a record without them. ``metrics``, if present, are
    stored as test attributes only. An optional ``validation`` attribute (a sentence) is
    shown in the tuning outputs.

    Parameters
    ----------
    spec : str
        Where the runner factory lives.

    Returns
    -------
    factory : callable
        The runner factory.
    """
    mod_name, sep, attr = str(spec).rpartition(":")
    if not sep or not mod_name or not attr:
        raise ParameterError(f"runner={spec!r} must look like 'package.module:name' or "
                             f"'path/file.py:name'; fix the spelling.")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise DataError(f"runner file {mod_name!r} does not exist; check the path.")
            module_spec = importlib.util.spec_from_file_location(
                f"_physioemo_runner_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ImportError as err:
        raise ParameterError(f"runner={spec!r} cannot be imported ({err}); give an importable "
                             f"module or a .py file.") from None
    if not hasattr(module, attr):
        raise ParameterError(f"runner={spec!r}: {mod_name} has no attribute {attr!r}; name "
                             f"an existing callable.")
    return getattr(module, attr)


class ProtocolObjective:
    """Optuna objective that runs a protocol fold by fold.

    Parameters
    ----------
    space : SearchSpace
        What to sample.
    runner : callable
        ``runner(config, subject, fold, out_dir) -> record`` (a :class:`ProtocolRunner`);
        ``runner.n_folds()`` gives the folds per subject. The record's ``val_metrics`` are
        optimised; its ``metrics`` (test) are only recorded.
    subjects : list of int
        0-based indices (into the runner's data) of the tuning subjects.
    folds : list of int | None
        Folds to run per subject; ``None`` means all.
    metric : str
        Key of :data:`METRICS` to optimise, read from each record's ``val_metrics``.
    work_dir : str | Path | None
        Where each trial's fold results go (``trials/trial_NNNN/``; a retried trial reuses
        its original's folder and skips finished folds). ``None`` keeps nothing on disk.

    Notes
    -----
    Folds run fold-major (fold 0 of every subject, then fold 1, ...) so that the first
    intermediate values already cover every subject, which makes early pruning fairer.
    The intermediate value at step ``k`` is the mean validation metric over the first
    ``k + 1`` folds. Every fold's validation metrics are stored as the trial attribute
    ``val_sNN_fF`` and, when the record has them, its test metrics as ``test_sNN_fF``
    (``NN`` is DREAMER's subject number); test metrics are never passed to
    ``trial.report`` nor to the returned value (see the module docstring for the data
    each protocol validates on).
    """

    def __init__(self, space, runner, *, subjects, folds=None, metric="weighted_f1",
                 work_dir=None):
        self.space = space
        self.runner = runner
        self.subjects = subjects
        self.folds = folds
        self.metric = metric
        self.work_dir = work_dir

    def __repr__(self):
        return (f"ProtocolObjective({self.runner!r}, metric={self.metric!r}, "
                f"subjects={self.subjects}, folds={self.folds})")

    @property
    def direction(self):
        """``"maximize"`` or ``"minimize"`` for :attr:`metric`."""
        return METRICS[self.metric]

    @property
    def validation(self):
        """One sentence saying which data the objective's metric is computed on."""
        return getattr(self.runner, "validation", None) or (
            "the runner's val_metrics (the custom runner does not say which data)")

    def _number(self, subject):
        numbers = getattr(self.runner, "subject_numbers", None)
        return int(numbers[subject]) if numbers is not None else subject + 1

    def tuning_subjects(self):
        """Return DREAMER's numbers of the tuning subjects (what the trials use)."""
        return [self._number(s) for s in self.subjects]

    def units(self):
        """Return the (subject, fold) pairs of one trial, in the order they run."""
        folds = self.folds if self.folds is not None else range(self.runner.n_folds())
        return [(s, f) for f in folds for s in self.subjects]

    def __call__(self, trial):
        """Run one trial and return the objective value."""
        import optuna

        if self.metric not in METRICS:
            raise ParameterError(f"metric={self.metric!r} is not a valid option; it must be "
                                 f"one of {sorted(METRICS)}; pick one.")
        config = self.space.suggest(trial)
        root = trial.user_attrs.get("lineage", trial.number)
        scores = {}
        for step, (subject, fold) in enumerate(self.units()):
            num = self._number(subject)
            out_dir = None
            if self.work_dir is not None:
                out_dir = Path(self.work_dir) / f"trial_{root:04d}" / f"s{num:02d}_f{fold}"
            record = self.runner(config, subject, fold, out_dir)
            if not isinstance(record.get("val_metrics"), dict):
                raise DataError(
                    f"the runner's record for subject {num}, fold {fold} has no "
                    f"'val_metrics' (keys: {sorted(record)}); the objective optimises "
                    "validation metrics only and never falls back to the test metrics in "
                    "'metrics'; make the runner return 'val_metrics' scored on data that is "
                    "neither the test block nor a subject evaluated later (see "
                    "physioemo.tuning.objective.ProtocolRunner).")
            val = _numeric(record["val_metrics"])
            if self.metric not in val:
                raise DataError(f"the fold record's val_metrics have no metric "
                                f"{self.metric!r} (they have {sorted(val)}); choose --metric "
                                f"among those.")
            value = val[self.metric]
            if not math.isfinite(value):
                raise DataError(f"subject {num}, fold {fold} gave validation {self.metric}="
                                f"{value}; a finite value is needed; check the data.")
            trial.set_user_attr(f"val_s{num:02d}_f{fold}", val)
            if isinstance(record.get("metrics"), dict):  # recorded, never reported
                trial.set_user_attr(f"test_s{num:02d}_f{fold}", _numeric(record["metrics"]))
            scores.setdefault(subject, []).append(value)
            running = float(np.mean([v for vals in scores.values() for v in vals]))
            trial.report(running, step)
            logger.debug("trial %d subject %d fold %d: validation %s=%.3f (running mean %.3f)",
                         trial.number, num, fold, self.metric, value, running)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"running mean validation {self.metric}={running:.3f} after {step + 1} "
                    f"of {len(self.units())} folds is below the pruner's threshold")
        per_subject = [float(np.mean(v)) for v in scores.values()]
        return float(np.mean(per_subject))


def _numeric(metrics):
    """Return the numeric entries of a metrics dict as floats."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float, np.floating, np.integer))}
