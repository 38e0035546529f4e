"""A fast stand-in for ProtocolRunner, loaded by `physioemo tune --runner FILE:FakeRunner`.

Its validation metric is a known function of the sampled parameters, so tests know the
optimum; its test metric is another function (other optimum, values above 100), so a test
can tell which of the two reached Optuna.
Environment variables steer it per worker process:
FAKE_SLEEP seconds per fold; FAKE_LOG file receiving one JSON line per fold start;
FAKE_BARRIER folder + FAKE_N_WORKERS: wait until that many workers have started;
FAKE_FAIL_IN_WORKER=error|kill: a worker process (not the parent) raises or is SIGKILLed.
"""

import json
import os
import time
from pathlib import Path

PARAMS = ["sigma", "graph", "epochs", "smoothing"]


def score(config, fold):
    """Validation weighted_f1 in percent: best at sigma = 0.7 and graph = 'G1'."""
    bonus = {"G0": 0.0, "G1": 10.0, "G2": 5.0}.get(config.get("graph"), 0.0)
    return 60.0 - 40.0 * (config["sigma"] - 0.7) ** 2 + bonus - fold


def score_test_block(config, fold):
    """Test weighted_f1: another optimum (sigma = 1.4, 'G2') and range (above 100)."""
    bonus = {"G0": 0.0, "G1": 0.0, "G2": 20.0}.get(config.get("graph"), 0.0)
    return 200.0 - 40.0 * (config["sigma"] - 1.4) ** 2 + bonus + fold


class FakeRunner:
    params = PARAMS
    n_subjects = 1

    def __init__(self, protocol, data, labels, **kwargs):
        import multiprocessing
        import signal

        self.protocol = protocol
        self.kwargs = kwargs
        fail = os.environ.get("FAKE_FAIL_IN_WORKER")
        if fail and multiprocessing.parent_process() is not None:
            if fail == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("the fake runner failed in a worker")

    def n_folds(self):
        return int(os.environ.get("FAKE_N_FOLDS", "2"))

    def __call__(self, config, subject, fold, out_dir=None):
        barrier = os.environ.get("FAKE_BARRIER")
        if barrier:
            Path(barrier, str(os.getpid())).touch()
            t0 = time.monotonic()
            while (len(list(Path(barrier).iterdir())) < int(os.environ["FAKE_N_WORKERS"])
                   and time.monotonic() - t0 < 60):
                time.sleep(0.05)
        log = os.environ.get("FAKE_LOG")
        if log:
            with open(log, "a") as fid:
                fid.write(json.dumps({"pid": os.getpid(), "config": config,
                                      "subject": subject, "fold": fold}) + "\n")
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
        value, test = score(config, fold), score_test_block(config, fold)
        return {"subject": subject + 1, "fold": fold,
                "val_metrics": {"weighted_f1": value, "seq2hr": 100.0 - value},
                "metrics": {"weighted_f1": test, "seq2hr": 300.0 - test}}
