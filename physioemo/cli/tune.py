"""``physioemo tune``: Optuna hyper-parameter search over a DREAMER protocol."""

from __future__ import annotations

HELP = "search hyper-parameters of a DREAMER protocol with Optuna (one machine or many)"
DESCRIPTION = """Search HiSTN hyper-parameters for one DREAMER protocol with Optuna.

Each trial samples a configuration from --search-space (YAML: type float/int/categorical,
low/high, log, step, choices; or a fixed value), runs the protocol through the same code
as `physioemo evaluate` one (subject, fold) at a time, reports the running mean of the
validation --metric so the pruner can stop bad trials, and stores every fold's metrics with
the trial.

Which data the objective uses: never a test split, never a subject evaluated later. Only
the --subjects (the tuning subjects) are loaded. For sd/sd-strict each trial's value is the
validation metric of each fold (sd: the validation block, 2,000 balanced windows of block
k-1; sd-strict: the fold's 3 validation clips), the data the trainer selects its epoch on;
the test block's metrics are stored with the trial (attributes test_sNN_fF) but never
reported to Optuna. For reston1, reston1-nc, 1on1 and no-pretrain it is an inner
leave-one-subject-out split of the tuning subjects: each tuning subject in turn is held out
and scored (last 50 s of its clips) after pretraining on the other tuning subjects only.
best_config.yaml then lists the subjects of the file NOT tuned on, so that `physioemo
evaluate --config best_config.yaml` gives an estimate free of the tuning (with every subject
tuned on, it has no `subjects` and its header warns).

Storage: an SQLite file in --out for one process; --jobs K starts K worker processes on
a journal file in --out; --storage postgresql://user:pass@host/db (or PHYSIOEMO_STORAGE)
lets any number of workers on any number of machines join the same study. SQLite is
never shared by several processes (one database-wide write lock: 'database is locked'
errors and lost updates). --n-trials is the total for the study: re-running the same
command resumes it, and trials of killed workers are retried with the same parameters.

Writes to --out: best_config.yaml (for `physioemo evaluate --config`), trials.csv,
plots/, study.json (study name and storage, credentials masked), config.yaml, run.json.

examples:
  physioemo tune --dreamer DREAMER.mat --protocol sd-strict --dimension valence \\
      --search-space configs/search_space_histn.yaml --n-trials 50 --out tune-out
  physioemo tune ... --jobs 2 --out tune-out              # 2 processes, journal file
  physioemo tune ... --storage postgresql://lab:***@db.lab/optuna --study-name histn-v
  physioemo evaluate --config tune-out/best_config.yaml --out eval-out
  optuna-dashboard sqlite:///tune-out/study.db
"""

#: Every option (argparse dest) with its default; a --config file may set any of them.
DEFAULTS = {
    "dreamer": None, "protocol": "sd-strict", "dimension": "valence", "search_space": None,
    "n_trials": 20, "timeout": None, "jobs": 1, "storage": None, "study_name": None,
    "sampler": "tpe", "pruner": "median", "metric": "weighted_f1", "subjects": None,
    "folds": None, "epochs": None, "finetune_epochs": None, "steps_per_epoch": None,
    "device": "cpu", "cache_dir": None, "out": None, "heartbeat_interval": 60,
    "grace_period": 120, "max_retry": 3, "runner": None, "plots": True, "seed": 0,
}

#: Options that fix a run_protocol keyword argument for every trial (unless searched).
FIXED_OPTIONS = ("epochs", "finetune_epochs", "steps_per_epoch")

_NOT_CONFIG = ("out",)


def add_arguments(parser):
    """Add the command's options."""
    from ..evaluation.protocols import DIMENSION_NAMES, PROTOCOLS
    from ..tuning.objective import METRICS

    a = parser.add_argument
    a("--dreamer", metavar="PATH", help="DREAMER .mat file (default: $PHYSIOEMO_DREAMER_PATH)")
    a("--protocol", choices=PROTOCOLS, help="evaluation protocol (default: sd-strict)")
    a("--dimension", choices=DIMENSION_NAMES, help="emotion dimension (default: valence)")
    a("--search-space", metavar="FILE",
      help="YAML search space (default: configs/search_space_histn.yaml)")
    a("--n-trials", type=int, metavar="N",
      help="trials in the whole study, all workers and runs together (default: 20)")
    a("--timeout", type=float, metavar="S",
      help="seconds after which a worker starts no new trial (default: none)")
    a("--jobs", type=int, metavar="K",
      help="worker processes on this machine (default: 1; >1 uses a journal file)")
    a("--storage", metavar="URL",
      help="postgresql://... (many workers/machines), sqlite:///file.db (one process) or a "
           "journal file path (default: $PHYSIOEMO_STORAGE, else a file in --out)")
    a("--study-name", metavar="NAME",
      help="study name (default: PROTOCOL-DIMENSION-METRIC)")
    a("--sampler", choices=("tpe", "random", "cmaes", "grid"), help="sampler (default: tpe)")
    a("--pruner", choices=("median", "hyperband", "none"), help="pruner (default: median)")
    a("--metric", choices=sorted(METRICS),
      help="validation metric the objective maximises (default: weighted_f1)")
    a("--subjects", type=int, nargs="+", metavar="N",
      help="tuning subjects, numbered 1..23 (default: all in the file); only these are "
           "loaded, so subject-independent protocols pretrain on them alone; evaluate the "
           "others afterwards")
    a("--folds", type=int, nargs="+", metavar="F",
      help="tune on these 0-based folds only (faster; `evaluate` later runs all folds)")
    a("--epochs", type=int, metavar="N",
      help="epochs of the main/pretraining stage for every trial (default: the recipe's; "
           "or search it in the search space)")
    a("--finetune-epochs", dest="finetune_epochs", type=int, metavar="N",
      help="fine-tuning epochs of reston1/1on1 for every trial (default: 400)")
    a("--steps-per-epoch", dest="steps_per_epoch", type=int, metavar="N",
      help="balanced batches per epoch for every trial (quick runs)")
    a("--device", choices=("cpu", "cuda"), help="training device (default: cpu)")
    a("--cache-dir", dest="cache_dir", metavar="DIR",
      help="preprocessing cache directory (default: the loader's)")
    a("--out", metavar="DIR", help="output folder (required)")
    a("--heartbeat-interval", type=int, metavar="S",
      help="seconds between heartbeats of a running trial (default: 60)")
    a("--grace-period", type=int, metavar="S",
      help="seconds without heartbeat before a trial counts as dead and is retried "
           "(default: 120)")
    a("--max-retry", type=int, metavar="N",
      help="retries of a failed or killed trial (default: 3)")
    a("--runner", metavar="MODULE:NAME",
      help="advanced: a custom runner factory instead of run_protocol (see "
           "physioemo.tuning.objective.load_runner)")
    a("--no-plots", dest="plots", action="store_false", default=None,
      help="do not draw plots")


def _index_list(values, *, name, low, high=None):
    """Check a list of integers from the command line or a config file."""
    from ..exceptions import ParameterError

    if values is None:
        return None
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    bad = [v for v in (values if isinstance(values, (list, tuple)) else [values])
           if not isinstance(v, int) or isinstance(v, bool) or v < low
           or (high is not None and v > high)]
    if bad or not values:
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise ParameterError(f"{name} must be a list of integers in {rng}, got {values!r}; "
                             f"write e.g. --{name} {low} {low + 1}.")
    return sorted(set(values))


def _settings(args):
    """Resolve CLI > PHYSIOEMO_* environment > --config > defaults."""
    from ..utils.config import load_config, resolve

    config = load_config(args.config, allowed=DEFAULTS) if args.config else None
    cli = {k: getattr(args, k, None) for k in DEFAULTS}
    s = resolve(DEFAULTS, config, cli)
    return s


def _check_settings(s):
    from ..exceptions import ParameterError, UsageError
    from ..utils._checks import check_number

    if not s["out"]:
        raise UsageError("no output folder given; --out DIR is required (the study, best "
                         "config, trials table and plots go there); pass --out DIR.")
    check_number("--n-trials", s["n_trials"], low=1, integer=True)
    check_number("--jobs", s["jobs"], low=1, integer=True)
    check_number("--max-retry", s["max_retry"], low=0, integer=True)
    check_number("--heartbeat-interval", s["heartbeat_interval"], low=1, integer=True)
    check_number("--grace-period", s["grace_period"], low=1, integer=True)
    if s["grace_period"] <= s["heartbeat_interval"]:
        raise ParameterError(
            f"--grace-period {s['grace_period']} must exceed --heartbeat-interval "
            f"{s['heartbeat_interval']} (a live trial would look dead between two "
            f"heartbeats); use e.g. --grace-period {2 * s['heartbeat_interval']}.")
    if s["timeout"] is not None:
        check_number("--timeout", s["timeout"], low=0, low_inclusive=False)
    if s["epochs"] is not None:
        check_number("--epochs", s["epochs"], low=1, integer=True)


def _default_search_space():
    from pathlib import Path

    here = Path(__file__).resolve().parents[2] / "configs" / "search_space_histn.yaml"
    return here if here.is_file() else Path("configs/search_space_histn.yaml")


def _build_objective(s, *, n_threads=None):
    """Load the data (or a custom runner) and return (objective, space, base_config).

    ``base_config`` holds the settings common to every trial under ``physioemo evaluate``'s
    option names; the best trial's parameters are merged into it for ``best_config.yaml``.
    """
    from pathlib import Path

    from ..exceptions import ParameterError
    from ..tuning.objective import ProtocolObjective, ProtocolRunner, load_runner
    from ..tuning.objective import searchable_params as _searchable
    from ..tuning.search_space import VALID_RANGES, load_search_space
    from ..utils.logging import logger
    from .evaluate import DEFAULTS as EVALUATE_KEYS

    numbers = _index_list(s["subjects"], name="subjects", low=1, high=23)
    folds = _index_list(s["folds"], name="folds", low=0)
    fixed = {k: s[k] for k in FIXED_OPTIONS if s[k] is not None}
    space_path = s["search_space"] or _default_search_space()
    held_out = None  # subjects of the file not tuned on (None: unknown, custom runner)
    if s["runner"]:
        factory = load_runner(s["runner"])
        runner = factory(s["protocol"], None, None, dimension=s["dimension"], seed=s["seed"],
                         device=s["device"], n_threads=n_threads)
        space = load_search_space(space_path, allowed=getattr(runner, "params", None),
                                  what="the runner")
        n_subjects = getattr(runner, "n_subjects", 1)
        if numbers is not None and max(numbers) > n_subjects:
            raise ParameterError(f"subjects {[n for n in numbers if n > n_subjects]} are not "
                                 f"in the data, which holds subjects 1..{n_subjects}; pick "
                                 f"subjects in that range.")
        subjects = list(range(n_subjects)) if numbers is None else [n - 1 for n in numbers]
    else:
        from ..datasets.cache import load_subjects
        from ..datasets.dreamer import ENV_VAR, load_dreamer
        from ..utils._checks import check_path

        space = load_search_space(space_path, allowed=_searchable(EVALUATE_KEYS),
                                  what="run_protocol that `physioemo evaluate --config` "
                                       "also accepts", ranges=VALID_RANGES)
        path = check_path("DREAMER file", s["dreamer"], env_var=ENV_VAR,
                          hint=f"pass --dreamer PATH or set {ENV_VAR}")
        n_file = load_dreamer(path, lazy=True).n_subjects
        tuning = list(range(1, n_file + 1)) if numbers is None else numbers
        if s["protocol"] in ("reston1", "reston1-nc", "1on1") and len(tuning) < 2:
            raise ParameterError(
                f"protocol {s['protocol']!r} is tuned by holding out one tuning subject at a "
                f"time and pretraining on the other tuning subjects, so it needs at least 2 "
                f"--subjects, got {tuning}; pass e.g. --subjects 1 2 3.")
        logger.info("loading tuning subjects %s of %s", tuning, path)
        # Only the tuning subjects: the subjects evaluated later must never reach a trial,
        # not even as pretraining data of the subject-independent protocols.
        data, labels, loaded, _ = load_subjects(path, numbers, cache_dir=s["cache_dir"])
        runner = ProtocolRunner(s["protocol"], data, labels, dimension=s["dimension"],
                                seed=s["seed"], device=s["device"], n_threads=n_threads,
                                subject_numbers=loaded)
        subjects = list(range(len(loaded)))
        held_out = [n for n in range(1, n_file + 1) if n not in set(tuning)]
    clash = sorted(set(fixed) & {p.name for p in space.params})
    if clash:
        raise ParameterError(f"{clash} are both searched (in {str(space_path)!r}) and fixed on "
                             f"the command line; a parameter is either searched or fixed; "
                             f"drop the option or the search-space entry.")
    space.fixed.update(fixed)
    if folds is not None:
        n = runner.n_folds()
        bad = [f for f in folds if f >= n]
        if bad:
            raise ParameterError(f"folds {bad} do not exist; protocol {s['protocol']!r} has "
                                 f"folds 0..{n - 1}; pick folds in that range.")
    objective = ProtocolObjective(space, runner, subjects=subjects, folds=folds,
                                  metric=s["metric"], work_dir=Path(s["out"]) / "trials")
    base = {"protocol": s["protocol"], "dimension": s["dimension"], "seed": s["seed"],
            "device": s["device"]}
    if s["dreamer"] is not None:
        base["dreamer"] = str(Path(s["dreamer"]).resolve())
    if held_out:  # `evaluate --config best_config.yaml` evaluates what was not tuned on
        base["subjects"] = held_out
    if s["cache_dir"] is not None:
        base["cache_dir"] = str(Path(s["cache_dir"]).resolve())
    base.update(space.fixed)
    return objective, space, base


def _study_name(s):
    return s["study_name"] or f"{s['protocol']}-{s['dimension']}-{s['metric']}"


def _worker(s, spec_kind, spec_url, index, verbosity, built=None):
    """Body of one worker process (``--jobs K``); also runs in-process for ``--jobs 1``.

    ``built`` is ``(objective, space, base_config)`` when already built in this process.
    """
    import os

    import optuna

    from ..tuning import study as st
    from ..utils.logging import configure_logging, logger

    if verbosity is not None:
        configure_logging(verbosity)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = st.StorageSpec(spec_kind, spec_url, multi_process=spec_kind != "sqlite")
    n_threads = max(1, (os.cpu_count() or 1) // s["jobs"])
    objective, space, _ = built or _build_objective(s, n_threads=n_threads)
    if not spec.multi_process:
        sampler_seed = s["seed"]
    elif s["jobs"] > 1:
        sampler_seed = s["seed"] + index  # distinct streams, else workers repeat each other
    else:
        sampler_seed = s["seed"] + os.getpid()
        logger.info("worker on a shared storage: sampler seed %d (seed + pid)", sampler_seed)
    n_steps = len(objective.units())
    storage = st.open_storage(spec, heartbeat_interval=s["heartbeat_interval"],
                              grace_period=s["grace_period"], max_retry=s["max_retry"])
    lock = st.budget_lock(spec, _study_name(s))
    try:
        study = st.create_or_load_study(
            storage, _study_name(s), direction=objective.direction,
            sampler=st.make_sampler(s["sampler"], seed=sampler_seed, space=space),
            pruner=st.make_pruner(s["pruner"], n_steps=n_steps), masked=spec.masked)
        retry = st.RetryCallback(s["max_retry"])
        if not spec.multi_process:
            st.recover_orphans(study, retry)
        counts = st.run_worker(study, objective, n_trials=s["n_trials"], lock=lock,
                               retry=retry, timeout=s["timeout"],
                               poll_s=min(2.0, s["heartbeat_interval"]))
    finally:
        lock.close()
    logger.info("worker %d done: %s", index, counts)
    return counts


def _worker_process(s, spec_kind, spec_url, index, verbosity, error_file):
    import sys
    from pathlib import Path

    from ..exceptions import PhysioEmoError

    try:
        _worker(s, spec_kind, spec_url, index, verbosity)
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException as err:  # the parent names it, whatever became of this stderr
        text = str(err) if isinstance(err, PhysioEmoError) else f"{type(err).__name__}: {err}"
        Path(error_file).write_text(" ".join(text.split()))
        if not isinstance(err, PhysioEmoError):
            raise
        print(f"physioemo tune (worker {index}): error: {err}", file=sys.stderr)
        sys.exit(2)


def _worker_failure(proc, error_file):
    """One phrase saying why a worker process stopped (its error, or the signal)."""
    import signal

    if error_file.is_file():
        return f"{proc.name}: {error_file.read_text()}"
    if proc.exitcode is not None and proc.exitcode < 0:
        sig = signal.Signals(-proc.exitcode).name
        hint = " (out of memory, or killed by hand?)" if sig == "SIGKILL" else ""
        return f"{proc.name} was killed by {sig}{hint}"
    return f"{proc.name} exited with code {proc.exitcode} without an error message"


def run(args):
    """Run the search."""
    import multiprocessing
    import sys

    import optuna

    from ..exceptions import PhysioEmoError
    from ..tuning import study as st
    from ..tuning.outputs import write_outputs
    from ..utils._checks import check_output_path
    from ..utils.config import write_run_metadata
    from ..utils.logging import logger

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = _settings(args)
    _check_settings(s)
    out = check_output_path(s["out"], kind="dir", inputs=(s["dreamer"], s["search_space"]))
    spec = st.resolve_storage(s["storage"], out, jobs=s["jobs"])
    name = _study_name(s)
    logger.info("study %r in %s (%s), %d trial(s) in total, %d worker process(es)", name,
                spec.masked, spec.kind, s["n_trials"], s["jobs"])
    # Validate everything (search space, data path, storage) before starting workers.
    objective, space, base = _build_objective(s)
    tuned, objective_data = objective.tuning_subjects(), objective.validation
    if s["sampler"] == "grid":
        import math

        size = math.prod(len(v) for v in space.grid().values())
        if s["n_trials"] > size:
            logger.warning("the grid has %d points; running %d trials, not %d", size, size,
                           s["n_trials"])
            s["n_trials"] = size
    storage = st.open_storage(spec, heartbeat_interval=s["heartbeat_interval"],
                              grace_period=s["grace_period"], max_retry=s["max_retry"])
    st.create_or_load_study(storage, name, direction=objective.direction, masked=spec.masked)
    plain = {k: v for k, v in s.items() if k not in _NOT_CONFIG}
    plain["storage"] = st.mask_url(s["storage"])
    argv = [st.mask_url(a) if "://" in str(a) else a for a in sys.argv]
    write_run_metadata(out, plain, seed=s["seed"], command=argv)
    verbosity = -1 if args.quiet else args.verbose
    interrupted = False
    if s["jobs"] == 1:
        try:
            _worker(s, spec.kind, spec.url, 0, None, built=(objective, space, base))
        except KeyboardInterrupt:
            interrupted = True
    else:
        objective = None  # each worker loads its own copy of the data
        ctx = multiprocessing.get_context("spawn")
        errors = [out / f".worker-{i}.error" for i in range(s["jobs"])]
        for path in errors:
            path.unlink(missing_ok=True)
        procs = [ctx.Process(target=_worker_process, name=f"physioemo-tune-{i}",
                             args=(s, spec.kind, spec.url, i, verbosity, str(errors[i])))
                 for i in range(s["jobs"])]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            interrupted = True
            for p in procs:
                p.join()
        failed = [_worker_failure(p, e) for p, e in zip(procs, errors, strict=True)
                  if p.exitcode not in (0, 130)]
        for path in errors:
            path.unlink(missing_ok=True)
        if failed and not interrupted:
            raise PhysioEmoError(f"{len(failed)} of {len(procs)} worker process(es) stopped: "
                                 f"{'; '.join(failed)}; the study is kept in {spec.masked}; "
                                 "fix the cause and re-run the same command to continue.")
    study = optuna.load_study(study_name=name, storage=storage)
    notes = [f"Tuned on subjects {tuned}; test-block metrics (sd, sd-strict) are only "
             f"recorded (test_* trial attributes), never optimised."]
    if "subjects" in base:
        notes.append(f"subjects: the {len(base['subjects'])} subject(s) of the file not "
                     f"tuned on (an estimate free of the tuning).")
    elif not s["runner"]:
        notes.append("WARNING: every subject of the file was tuned on; evaluating them gives "
                     "an optimistic estimate; evaluate subjects that were not tuned on.")
    if s["folds"] is not None:
        notes.append(f"Tuned on folds {s['folds']} only; evaluate runs every fold.")
    info = write_outputs(study, out, base_config=base, metric=s["metric"], storage=spec,
                         n_trials=s["n_trials"], plots=s["plots"], notes=notes,
                         objective_data=objective_data, tuning_subjects=tuned)
    best = info["best_trial"]
    if best is not None:
        logger.info("best: trial %d, %s = %.4f, %s -> %s", best["number"], s["metric"],
                    best["value"], best["params"], out / "best_config.yaml")
    else:
        logger.warning("no trial completed yet; re-run the same command to continue")
    if interrupted:
        raise KeyboardInterrupt
    return 0
