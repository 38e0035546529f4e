"""The CUDA-graph training step against the eager one (runs only where CUDA is available)."""

import numpy as np
import pytest
import torch

from physioemo.models import HiSTN
from physioemo.training.trainer import Trainer, WindowSet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _windows():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((10, 14, 128 * 8)).astype(np.float32)
    labels = np.arange(10) % 5
    rows = np.repeat(np.arange(10), 15)
    starts = np.tile(np.arange(0, 15 * 64, 64), 10)
    return WindowSet(data, labels, rows, starts)


def _fit(cuda_graph, lr):
    torch.manual_seed(0)
    model = HiSTN(dropout=0.0)  # no dropout: graphed and eager draw no random numbers
    trainer = Trainer(model, epochs=3, batch_size=32, steps_per_epoch=5, lr=lr,
                      select="last", device="cuda", cuda_graph=cuda_graph, seed=0,
                      verbose=False)
    trainer.fit(_windows())
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, trainer.history_


@pytest.mark.parametrize("lr", [1e-3, {0: 3e-3, 1: 1e-3, 2: 1e-4}])
def test_graphed_training_equals_eager(lr):
    # 15 steps: 3 eager warm-up steps, one recording, 11 replays, and a schedule whose
    # later rates only reach the graph through the in-place update of the lr tensor
    eager, h_eager = _fit(False, lr)
    graphed, h_graphed = _fit(True, lr)
    assert h_graphed["lr"] == h_eager["lr"]
    np.testing.assert_allclose(h_graphed["train_loss"], h_eager["train_loss"], rtol=1e-4)
    for k in eager:
        if eager[k].is_floating_point():
            torch.testing.assert_close(graphed[k], eager[k], rtol=1e-4, atol=1e-5, msg=k)
        else:
            assert torch.equal(graphed[k], eager[k]), k  # num_batches_tracked
    # and training moved the weights (the comparison is not between two untouched models)
    torch.manual_seed(0)
    init = HiSTN(dropout=0.0).state_dict()
    assert not torch.allclose(graphed["temporal.kernels"], init["temporal.kernels"])
