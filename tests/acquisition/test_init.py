"""Importing physioemo.acquisition loads neither BrainFlow, pyedflib, pylsl nor torch."""

import json
import subprocess
import sys


def test_import_is_light():
    heavy = ["brainflow", "pyedflib", "pylsl", "torch", "optuna", "rich"]
    code = ("import json, sys; import physioemo.acquisition, physioemo.cli.acquire; "
            f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_only_brainflow_source_imports_brainflow():
    from pathlib import Path

    import physioemo

    root = Path(physioemo.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if "import brainflow" in p.read_text() or "from brainflow" in p.read_text())
    assert users == ["acquisition/brainflow_source.py"]
