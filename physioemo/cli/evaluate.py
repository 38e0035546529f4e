"""``physioemo evaluate``: run a DREAMER protocol with HiSTN and write tables and a report."""

from __future__ import annotations

HELP = "evaluate HiSTN on DREAMER under a protocol (sd, sd-strict, reston1, ...)"
DESCRIPTION = """Train and test HiSTN on DREAMER under one of the paper's protocols and write,
in --out: config.yaml (the resolved settings; `--config out/config.yaml` reproduces the run),
run.json (seed, versions), results.jsonl (one line per subject and fold, written as computed;
a rerun into the same --out resumes), results.csv / results.md (per subject and
mean ± std over subjects), report.html (self-contained, with plots) and checkpoints/ (the last
trained model of each subject, for `physioemo predict`). Beside HiSTN, every fold also
scores baselines on the same windows (majority class, stratified guessing, band DE +
logistic regression, heart rate/HRV from the ECG + logistic regression) and a shortcut probe
(channel means and slopes, 5-nearest neighbours): the report says by how much HiSTN beats
them and warns when it does not; --no-baselines skips them. Nothing is written before the
inputs are validated; with --subjects, the subject-dependent protocols (sd, sd-strict,
no-pretrain) preprocess only those subjects (`physioemo info` lists the usable ones).

protocols:
  sd           the paper's subject-dependent recipe (10 temporal blocks per clip;
               within-trial, optimistic)
  sd-strict    leak-free subject-dependent: whole clips held out
  reston1      leave-one-subject-out pretraining with label correction, fine-tuning on
               the first 10 s of each clip of the new subject (the paper's SI numbers)
  reston1-nc   the same without label correction
  1on1         pretrain on the previous subject only, then fine-tune
  no-pretrain  fine-tuning stage only

--normalization paper (default) is the reference's: each clip z-scored with its baseline,
then divided by its own maximum absolute value over the kept 60 s (transductive: that scale
uses the whole clip, under sd its test part too). --normalization causal divides by the
maximum absolute value of the z-scored baseline instead: what a live stream can compute.
Checkpoints record the form; `predict` follows it and `acquire --model` needs causal.

Without --dreamer (and without PHYSIOEMO_DREAMER_PATH) a small generated DREAMER-format
file is used, and the output says so loudly.

examples:
  physioemo evaluate --dreamer DREAMER.mat --protocol sd --dimension valence --out sd-val
  physioemo evaluate --dreamer DREAMER.mat --protocol reston1 --subjects 1 2 --jobs 2 --out si
  physioemo evaluate --protocol sd --subjects 1 --epochs 3 --smoothing both --out quick
  physioemo evaluate --config quick/config.yaml
"""

PROTOCOLS = ("sd", "sd-strict", "reston1", "reston1-nc", "1on1", "no-pretrain")
SI_PROTOCOLS = ("reston1", "reston1-nc", "1on1")

#: Every setting with its default; config keys are exactly these names.
DEFAULTS = {
    "dreamer": None, "protocol": "sd", "dimension": "valence", "subjects": None,
    "epochs": None, "finetune_epochs": None, "steps_per_epoch": None,
    "lr": None, "dropout": None, "batch_size": None,
    "smoothing": "gaussian", "sigma": 0.5, "graph": "G0", "jobs": 1, "threads": None,
    "device": "cpu", "normalization": "paper", "cache_dir": None, "synthetic_subjects": 4,
    "synthetic_seconds": 70.0, "out": None, "seed": 0, "baselines": True,
}


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("--dreamer", metavar="PATH",
                        help="DREAMER.mat (default: $PHYSIOEMO_DREAMER_PATH, else a small "
                             "generated file)")
    parser.add_argument("--protocol", choices=PROTOCOLS, help="protocol (default: sd)")
    parser.add_argument("--dimension", choices=("valence", "arousal", "dominance"),
                        help="self-report to predict (default: valence)")
    parser.add_argument("--subjects", type=int, nargs="+", metavar="N",
                        help="subjects to evaluate, numbered 1..23 (default: all)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="override the epochs of the main/pretraining stage (quick runs)")
    parser.add_argument("--finetune-epochs", dest="finetune_epochs", type=int, metavar="N",
                        help="override the 400 fine-tuning epochs of reston1/1on1")
    parser.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int, metavar="N",
                        help="override the balanced batches per epoch (quick runs)")
    parser.add_argument("--lr", type=float, metavar="LR",
                        help="initial learning rate of the main/pretraining stage; later "
                             "milestones scale with it (default: the recipe's, 1e-3 for sd, "
                             "1e-2 for reston1)")
    parser.add_argument("--dropout", type=float, metavar="P",
                        help="model dropout in [0, 1) (default: the recipe's, 0.5 SD, 0.2 SI)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, metavar="N",
                        help="windows per batch of the main/pretraining stage (default: the "
                             "recipe's, 256 SD, 120 SI)")
    parser.add_argument("--smoothing", choices=("gaussian", "onehot", "uniform", "both"),
                        help="training targets; 'both' runs gaussian and onehot "
                             "(default: gaussian)")
    parser.add_argument("--sigma", type=float, help="Gaussian smoothing width (default: 0.5)")
    parser.add_argument("--graph", choices=("G0", "G1", "G2"), help="region graph (default: G0)")
    parser.add_argument("--jobs", type=int, metavar="K",
                        help="parallel processes, on subjects and (sd, sd-strict) on their "
                             "folds (default: 1)")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="torch threads per process (default: cores // jobs)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cpu")
    parser.add_argument("--normalization", choices=("paper", "causal"),
                        help="paper: the reference's (baseline z-score, max-abs over each "
                             "60-s clip; transductive); causal: divided by the z-scored "
                             "baseline's max-abs instead, what a live stream computes; "
                             "train causal for `acquire --model` (default: paper)")
    parser.add_argument("--cache-dir", dest="cache_dir", metavar="DIR",
                        help="preprocessing cache directory (default: the loader's)")
    parser.add_argument("--synthetic-subjects", dest="synthetic_subjects", type=int,
                        metavar="N", help="subjects in the generated file (default: 4)")
    parser.add_argument("--synthetic-seconds", dest="synthetic_seconds", type=float,
                        metavar="S", help="stimulus length in the generated file "
                                          "(default: 70)")
    parser.add_argument("--no-baselines", dest="baselines", action="store_const", const=False,
                        help="skip the baselines and the shortcut probe scored beside HiSTN "
                             "(a run resumes only with the same choice)")
    parser.add_argument("--out", metavar="DIR", help="output directory (required)")


def resolve_settings(args):
    """Merge defaults, ``--config``, environment and flags into one settings dict."""
    from ..utils.config import load_config, resolve

    config = load_config(args.config, allowed=DEFAULTS) if args.config else None
    cli = {k: getattr(args, k, None) for k in DEFAULTS}
    return resolve(DEFAULTS, config, cli)


def _check(settings):
    from ..exceptions import ParameterError, UsageError
    from ..utils._checks import check_number, check_option

    if not settings["out"]:
        raise UsageError("no output directory given; pass --out DIR (or 'out' in --config).")
    check_option("protocol", settings["protocol"], PROTOCOLS)
    check_option("smoothing", settings["smoothing"], ("gaussian", "onehot", "uniform", "both"))
    check_option("normalization", settings["normalization"], ("paper", "causal"))
    for key in ("epochs", "finetune_epochs", "steps_per_epoch", "batch_size", "threads"):
        if settings[key] is not None:
            check_number(key, settings[key], low=1, integer=True)
    for key in ("lr", "dropout"):
        # YAML 1.1 (config files, PHYSIOEMO_* variables) reads `1e-3` as a string
        if isinstance(settings[key], str):
            try:
                settings[key] = float(settings[key])
            except ValueError:
                pass  # check_number says what is wrong
    if settings["lr"] is not None:
        settings["lr"] = check_number("lr", settings["lr"], low=0.0, low_inclusive=False,
                                      hint="pass a positive initial learning rate such as "
                                           "1e-3")
    if settings["dropout"] is not None:
        settings["dropout"] = check_number("dropout", settings["dropout"], low=0.0, high=1.0,
                                           high_inclusive=False, hint="pass a dropout "
                                           "probability such as 0.5 (0 disables it)")
    check_number("jobs", settings["jobs"], low=1, integer=True)
    check_number("synthetic_subjects", settings["synthetic_subjects"], low=2, high=23,
                 integer=True)
    if settings["subjects"] is not None:
        if isinstance(settings["subjects"], int | str):  # `subjects: 1` in a config file
            settings["subjects"] = [settings["subjects"]]
        if not isinstance(settings["subjects"], list | tuple) or not settings["subjects"]:
            raise ParameterError(f"subjects must be a list of subject numbers 1..23, got "
                                 f"{settings['subjects']!r}; write e.g. `subjects: [1, 2]` "
                                 "in --config or --subjects 1 2.")
        settings["subjects"] = [check_number("subjects", s, low=1, high=23, integer=True,
                                             hint="number subjects 1..23 as DREAMER does")
                                for s in settings["subjects"]]


#: Settings that may change when a run resumes (they don't change any result).
RESUMABLE = ("subjects", "jobs", "threads", "cache_dir", "out")


def _refuse_other_settings(out, settings):
    """Refuse, before anything is written, to resume ``out`` with other settings."""
    import yaml

    from ..exceptions import ParameterError
    from ..utils.config import _plain, load_config

    path = out / "config.yaml"
    if not path.exists() or not any(p.stat().st_size for p in out.glob("**/results.jsonl")):
        return  # nothing yet, or a run that failed before its first result
    old = load_config(path)
    old.setdefault("normalization", "paper")  # runs from before the forms existed
    new = yaml.safe_load(yaml.safe_dump(_plain(settings)))
    diff = sorted(k for k in set(old) | set(new)
                  if k not in RESUMABLE and old.get(k) != new.get(k))
    if diff:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
        raise ParameterError(
            f"{str(out)!r} holds a run with other settings ({detail}); a run resumes only "
            "with the same settings (subjects, jobs and threads may change); use a new --out "
            f"or the original settings (--config {path}).")


def run(args):
    """Run the evaluation."""
    import sys
    from pathlib import Path

    import numpy as np

    from ..datasets import make_synthetic_dreamer
    from ..datasets.cache import load_subjects
    from ..datasets.dreamer import ENV_VAR
    from ..evaluation.protocols import run_protocol
    from ..evaluation.report import build_report
    from ..utils._checks import check_output_path
    from ..utils.config import write_run_metadata
    from ..utils.logging import logger

    settings = resolve_settings(args)
    _check(settings)
    # Nothing is written before the inputs are validated: a failed run leaves no
    # config.yaml/run.json that would make the corrected rerun look like "other settings".
    out = check_output_path(settings["out"], kind="dir", inputs=(settings["dreamer"],))
    notes = []
    path = settings["dreamer"]
    if path is not None:
        settings["dreamer"] = str(path)
    _refuse_other_settings(out, settings)
    if path is None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "synthetic_dreamer.mat"
        n_subj = int(settings["synthetic_subjects"])
        if settings["subjects"]:
            n_subj = max(n_subj, max(settings["subjects"]))
        if not path.exists():
            make_synthetic_dreamer(path, n_subjects=n_subj,
                                   stimulus_seconds=settings["synthetic_seconds"],
                                   seed=int(settings["seed"]))
        msg = (f"WARNING: no --dreamer given and {ENV_VAR} is not set: using a GENERATED "
               f"DREAMER-format file ({path}, {n_subj} synthetic subjects). These numbers "
               "say nothing about real EEG.")
        logger.warning(msg)
        notes.append(msg)

    cache_dir = settings["cache_dir"] or (out / "cache" if notes else None)
    # subject-independent protocols train on the other subjects: they need them all
    data, labels, numbers, data_id = load_subjects(
        path, None if settings["protocol"] in SI_PROTOCOLS else settings["subjects"],
        cache_dir=cache_dir, normalization=settings["normalization"])
    ecg = None
    if settings["baselines"]:
        from ..datasets.cache import load_r_peaks
        from ..exceptions import DataError

        try:
            ecg = load_r_peaks(path, subjects=[int(n) - 1 for n in numbers],
                               cache_dir=cache_dir)
        except DataError as err:  # unusable ECG costs the physio baseline, not the run
            logger.warning("physio baseline not available: %s", err)
    write_run_metadata(out, settings, seed=settings["seed"], command=sys.argv)
    smoothings = (["gaussian", "onehot"] if settings["smoothing"] == "both"
                  else [settings["smoothing"]])
    subjects = None if settings["subjects"] is None else [
        int(np.flatnonzero(numbers == s)[0]) for s in settings["subjects"]]
    run_dirs = []
    for smoothing in smoothings:
        run_dir = out if len(smoothings) == 1 else out / smoothing
        run_protocol(settings["protocol"], data, labels, dimension=settings["dimension"],
                     subjects=subjects, epochs=settings["epochs"],
                     finetune_epochs=settings["finetune_epochs"],
                     steps_per_epoch=settings["steps_per_epoch"], lr=settings["lr"],
                     dropout=settings["dropout"], batch_size=settings["batch_size"],
                     smoothing=smoothing,
                     sigma=settings["sigma"], graph=settings["graph"], seed=settings["seed"],
                     out_dir=run_dir, n_jobs=settings["jobs"], n_threads=settings["threads"],
                     device=settings["device"], subject_numbers=numbers, data_id=data_id,
                     baselines=bool(settings["baselines"]), ecg=ecg,
                     normalization=settings["normalization"])
        run_dirs.append(run_dir)
    paths = build_report(run_dirs, out, notes=notes,
                         title=f"physioemo evaluate: {settings['protocol']}, "
                               f"{settings['dimension']}")
    print(Path(paths["md"]).read_text())
    logger.info("report: %s", paths["html"])
    if notes:
        print(notes[0], file=sys.stderr)
    return 0
