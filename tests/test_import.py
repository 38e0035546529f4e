"""`import physioemo` and `import physioemo.dsp` stay light (checked in a fresh process)."""

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "torch_geometric", "brainflow", "optuna"]


@pytest.mark.parametrize("module, forbidden", [
    ("physioemo", HEAVY + ["numba", "mne"]),
    ("physioemo.dsp", HEAVY + ["numba", "mne"]),
])
def test_import_does_not_load_heavy_modules(module, forbidden):
    code = (f"import json, sys; import {module}; "
            f"print(json.dumps(sorted(m for m in {forbidden!r} if m in sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_check_sees_a_loaded_module():
    # the probe above can fail: importing numba through the kernels shows up
    code = ("import json, sys; import physioemo.dsp._kernels; "
            "print(json.dumps('numba' in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(res.stdout.strip().splitlines()[-1]) is True
