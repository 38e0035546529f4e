"""Checkpoints are verified before they predict: a checksum written at save time, finite
weights (issue 13, case 6)."""

import hashlib
import logging

import numpy as np
import pytest
import torch

from physioemo.exceptions import DataError
from physioemo.models import build_model, load_checkpoint, save_checkpoint
from physioemo.models.registry import weights_sha256


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("histn", dropout=0.5).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model)
    return path, model


def _largest_weight(model):
    name, t = max(model.state_dict().items(), key=lambda kv: kv[1].numel())
    return name, t.detach().cpu().numpy()


def _flip(path, model, value_bytes):
    """Overwrite 8 bytes in the middle of the largest weight tensor, in place."""
    name, arr = _largest_weight(model)
    raw = bytearray(path.read_bytes())
    at = raw.find(arr.tobytes()[:4096])
    assert at > 0, "tensor bytes not found in the file"
    at += 4 * (arr.size // 2)
    raw[at:at + len(value_bytes)] = value_bytes
    path.write_bytes(bytes(raw))
    return name


def test_checksum_is_the_sha256_of_the_weights(saved):
    path, model = saved
    payload = torch.load(path, weights_only=True)
    # independent oracle: hashlib over numpy bytes, names sorted
    h = hashlib.sha256()
    for name in sorted(model.state_dict()):
        t = model.state_dict()[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    assert payload["sha256"] == h.hexdigest() == weights_sha256(model.state_dict())
    assert payload["version"] == 2


def test_flipped_bytes_that_stay_finite_are_refused(saved):
    path, model = saved
    name = _flip(path, model, np.float32([1.2345]).tobytes())
    loaded = torch.load(path, weights_only=True)  # torch itself notices nothing
    assert not torch.equal(loaded["state_dict"][name], model.state_dict()[name])
    with pytest.raises(DataError, match=r"is corrupt: the SHA-256 of its weights .* differs "
                                        r"from the one written when it was saved"):
        load_checkpoint(path)


def test_flipped_bytes_to_nan_are_refused(saved):
    path, model = saved
    _flip(path, model, b"\xff\xff\xff\xff")
    with pytest.raises(DataError, match="is corrupt"):
        load_checkpoint(path)


def test_old_checkpoint_without_checksum_warns_and_checks_finiteness(saved, tmp_path, caplog):
    path, model = saved
    payload = torch.load(path, weights_only=True)
    del payload["sha256"]
    payload["version"] = 1
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    with caplog.at_level(logging.WARNING, logger="physioemo"):
        loaded, _ = load_checkpoint(old)
    assert "has no checksum" in caplog.text
    x = torch.randn(2, 14, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    name, _ = _largest_weight(model)
    payload["state_dict"][name] = payload["state_dict"][name].clone()
    payload["state_dict"][name].view(-1)[7] = float("nan")
    torch.save(payload, old)
    with pytest.raises(DataError, match=rf"non-finite weights \(1 NaN/inf in '{name}'"):
        load_checkpoint(old)
