"""Training loop for HiSTN-style window classifiers (Kuang et al., arXiv 2408.15255, §5).

:class:`WindowSet` describes windows cut from clips without copying them: the clips are one
array ``(n_rows, n_channels, n_times)`` and each window is a ``(row, start)`` pair; a batch
is gathered with one vectorised indexing operation on a strided view. :class:`Trainer`
implements the paper's recipes: class-balanced batch sampling (a uniform class among the
present classes per window, or exactly ``batch // n_classes`` windows per class; then a
uniform clip of that class and a uniform window of that clip) or shuffled epochs,
piecewise-constant learning rates per epoch, Adam (with Keras' epsilon), the model's weight
constraints after every step, smoothed training targets, hard-label validation loss with the
best weights kept, and freezing of the first temporal convolution for fine-tuning.
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import torch

from ..exceptions import ParameterError
from ..utils._checks import check_array, check_number, check_option
from ..utils.logging import logger, progress
from ..utils.seeding import set_seed
from .losses import class_weights, make_targets, soft_cross_entropy

__all__ = ["WindowSet", "Trainer", "lr_at", "ADAM_EPS", "SAMPLINGS"]

#: Adam's epsilon: Keras' default (1e-7; PyTorch's default is 1e-8). Keras adds it to
#: ``sqrt(v)`` before the bias correction and PyTorch after it, so the two updates still
#: differ while ``sqrt(v)`` is of the order of epsilon (see docs/reproducing-the-paper.md).
ADAM_EPS = 1e-7

#: Batch samplings of :class:`Trainer`.
SAMPLINGS = ("balanced", "balanced-exact", "shuffle")


class WindowSet:
    """Windows of ``window_samples`` samples cut from clips, with the clip labels.

    Parameters
    ----------
    data : ndarray, shape (n_rows, n_channels, n_times)
        The clips (float32 preferred; not copied).
    labels : array-like of int, shape (n_rows,)
        Class of each clip.
    rows : array-like of int, shape (n_windows,)
        Clip (row of ``data``) of each window.
    starts : array-like of int, shape (n_windows,)
        Start sample of each window.
    window_samples : int
        Window length in samples.
    """

    def __init__(self, data, labels, rows, starts, window_samples=128):
        self.data = check_array("data", data, ndim=3, finite=False)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.window_samples = int(window_samples)
        n_rows, _, n_times = self.data.shape
        if self.labels.shape != (n_rows,):
            raise ParameterError(f"labels must have shape ({n_rows},) (one per clip), got "
                                 f"{self.labels.shape}; pass one class per row of data.")
        if self.rows.shape != self.starts.shape or self.rows.ndim != 1:
            raise ParameterError(f"rows and starts must be 1-D of equal length, got shapes "
                                 f"{self.rows.shape} and {self.starts.shape}; pass one (row, "
                                 "start) pair per window.")
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= n_rows):
            raise ParameterError(f"rows must lie in 0..{n_rows - 1}, got {self.rows.min()}.."
                                 f"{self.rows.max()}; index rows of data.")
        last = n_times - self.window_samples
        if len(self.starts) and (self.starts.min() < 0 or self.starts.max() > last):
            raise ParameterError(f"window starts must lie in 0..{last} for clips of {n_times} "
                                 f"samples, got {self.starts.min()}..{self.starts.max()}; "
                                 "keep every window inside its clip.")

    @classmethod
    def from_starts(cls, data, labels, starts, rows=None, window_samples=128):
        """Windows at the same ``starts`` in every clip of ``rows``.

        Parameters
        ----------
        data : ndarray, shape (n_rows, n_channels, n_times)
            The clips.
        labels : array-like of int, shape (n_rows,)
            Class of each clip.
        starts : array-like of int, shape (n_starts,)
            Window starts used in each clip.
        rows : array-like of int | None
            Clips to use; ``None`` means all.
        window_samples : int
            Window length in samples.

        Returns
        -------
        windows : WindowSet
            ``len(rows) * n_starts`` windows, clip-major.
        """
        rows = np.arange(len(data)) if rows is None else np.asarray(rows, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        return cls(data, labels, np.repeat(rows, len(starts)), np.tile(starts, len(rows)),
                   window_samples)

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return (f"WindowSet(n_windows={len(self)}, n_clips={len(np.unique(self.rows))}, "
                f"window_samples={self.window_samples})")

    @property
    def y(self):
        """Class of each window, ndarray of int64, shape (n_windows,)."""
        return self.labels[self.rows]

    def subset(self, idx):
        """Return the windows ``idx`` as a new :class:`WindowSet` sharing ``data``."""
        return WindowSet(self.data, self.labels, self.rows[idx], self.starts[idx],
                         self.window_samples)

    def gather(self, idx=None):
        """Copy windows into one array.

        Parameters
        ----------
        idx : array-like of int | None
            Windows to gather; ``None`` means all.

        Returns
        -------
        X : ndarray, shape (n, n_channels, window_samples)
        """
        view = np.lib.stride_tricks.sliding_window_view(self.data, self.window_samples,
                                                        axis=-1)
        rows, starts = (self.rows, self.starts) if idx is None else (self.rows[idx],
                                                                      self.starts[idx])
        # Advanced indices split by a slice put the window axis first: (n, n_channels, w).
        return np.ascontiguousarray(view[rows, :, starts])

    def balanced_sampler(self, rng, exact=False):
        """Return ``draw(n)`` giving class-balanced window indices.

        With ``exact=False`` (the subject-dependent recipe, §5.1) each of the ``n`` windows
        gets a class drawn uniformly among the classes present, so a batch's class counts
        are multinomial. With ``exact=True`` (the reference's subject-independent
        pretraining batches) a batch holds exactly ``n // n_classes`` windows of every
        present class; the ``n % n_classes`` remaining windows go to as many distinct
        classes drawn at random for each batch (the reference only ran batch sizes
        divisible by the class count), and the batch is returned shuffled. Then, in both
        cases, a clip of the class is drawn uniformly and a window of that clip uniformly
        (the reference draws uniformly among the class's windows: the same when every clip
        has as many windows, as in the pretraining) — all vectorised.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness.
        exact : bool
            Exactly balanced class counts per draw instead of a uniform class per window.

        Returns
        -------
        draw : callable
            ``draw(n) -> ndarray of int64, shape (n,)``.
        """
        order = np.argsort(self.rows, kind="stable")
        row_ids, offsets, counts = np.unique(self.rows[order], return_index=True,
                                             return_counts=True)
        row_labels = self.labels[row_ids]
        classes = np.unique(row_labels)
        per_class = [np.flatnonzero(row_labels == c) for c in classes]
        n_per_class = np.array([len(p) for p in per_class])
        table = np.zeros((len(classes), n_per_class.max()), dtype=np.int64)
        for i, p in enumerate(per_class):
            table[i, :len(p)] = p

        n_classes = len(classes)

        def draw(n):
            if exact:
                counts_c = np.full(n_classes, n // n_classes)
                counts_c[rng.choice(n_classes, n % n_classes, replace=False)] += 1
                ci = rng.permutation(np.repeat(np.arange(n_classes), counts_c))
            else:
                ci = rng.integers(n_classes, size=n)
            pos = (rng.random(n) * n_per_class[ci]).astype(np.int64)
            r = table[ci, pos]
            win = offsets[r] + (rng.random(n) * counts[r]).astype(np.int64)
            return order[win]

        return draw


def lr_at(schedule, epoch):
    """Learning rate of a piecewise-constant schedule at ``epoch``.

    Parameters
    ----------
    schedule : dict of int -> float | float
        ``{first_epoch: lr}``; the rate holds from its epoch until the next key. A number
        means a constant rate.
    epoch : int
        0-based epoch.

    Returns
    -------
    lr : float
    """
    if not isinstance(schedule, dict):
        return float(schedule)
    keys = sorted(int(k) for k in schedule)
    active = [k for k in keys if k <= epoch]
    return float(schedule[active[-1]] if active else schedule[keys[0]])


class _Step:
    """One training step (forward, loss, backward, Adam, constraints), eager or graphed.

    With ``graph=True`` (CUDA only) the first three full-size steps run eagerly on a side
    stream, as :func:`torch.cuda.graph` requires, the fourth is recorded once and then it and
    every later step of that batch shape replay the recording with the batch copied into
    its static inputs: the same kernels on the same tensors, without launching them one by
    one from Python. Batches of another shape (a last, smaller one) run eagerly.
    """

    n_warmup = 3

    def __init__(self, model, optimizer, constrain, graph):
        self.model, self.optimizer, self.constrain = model, optimizer, constrain
        self.graph = graph
        self._warm = 0
        self._cuda_graph = self._inputs = self._loss = None

    def _eager(self, X, targets, w):
        self.optimizer.zero_grad(set_to_none=True)
        loss = soft_cross_entropy(self.model(X), targets, weight=w)
        loss.backward()
        self.optimizer.step()
        if self.constrain is not None:
            self.constrain()
        return loss.detach()

    def _record(self, X, targets, w):
        self._inputs = (X.clone(), targets.clone(), None if w is None else w.clone())
        sx, st, sw = self._inputs
        self.optimizer.zero_grad(set_to_none=True)
        self._cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._cuda_graph):
            self._loss = self._eager(sx, st, sw)

    def __call__(self, X, targets, w=None):
        """Run one step on a batch and return its loss (a 0-d tensor on the device)."""
        if not self.graph or (self._inputs is not None and X.shape != self._inputs[0].shape):
            return self._eager(X, targets, w)
        if self._cuda_graph is None:
            if self._warm < self.n_warmup:
                self._warm += 1
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    loss = self._eager(X, targets, w)
                torch.cuda.current_stream().wait_stream(side)
                return loss
            self._record(X, targets, w)
        sx, st, sw = self._inputs
        sx.copy_(X)
        st.copy_(targets)
        if sw is not None:
            sw.copy_(w)
        self._cuda_graph.replay()
        return self._loss


class Trainer:
    """Train a window classifier with the recipes of histn-spec §5.

    The constructor only stores settings; :meth:`fit` does the work and sets the attributes
    ending in ``_``.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(batch, n_channels, n_times)`` float32 to logits ``(batch, n_classes)``.
        ``apply_constraints()`` is called after every optimiser step when the model has it.
    epochs : int
        Number of epochs.
    batch_size : int
        Windows per batch.
    steps_per_epoch : int | None
        Batches per epoch with the balanced samplings; ``None`` means
        ``n_train_windows // batch_size`` (at least 1). With ``sampling="shuffle"`` an epoch
        is one pass over the windows in shuffled batches (the last one may be smaller).
    lr : float | dict of int -> float
        Learning rate, or a piecewise-constant schedule ``{first_epoch: lr}``.
    sampling : {"balanced", "balanced-exact", "shuffle"}
        Class-balanced random batches (a uniform class per window, the subject-dependent
        recipe), exactly class-balanced batches (``batch_size // n_classes`` windows of
        every present class, the subject-independent pretraining; see
        :meth:`WindowSet.balanced_sampler`), or shuffled epochs.
    smoothing : {"gaussian", "onehot", "uniform"}
        Training targets (validation always uses hard labels).
    sigma : float
        Width of the Gaussian smoothing.
    epsilon : float
        Mass of the uniform smoothing.
    class_weighting : bool
        Weight each training window by ``max_c n_c / n_c`` of its class (§5.2 stage 2).
    select : {"val_loss", "last"}
        Keep the weights with the lowest validation loss, or those of the last epoch.
    n_classes : int
        Number of classes.
    freeze_first_conv : bool
        Freeze the first temporal convolution (fine-tuning, §5.2).
    device : {"cpu", "cuda"}
        Where to train.
    cuda_graph : bool | None
        On CUDA, record one whole training step (forward, loss, backward, Adam, constraints)
        as a CUDA graph after three eager warm-up steps and replay it for every full batch:
        the same computation without the per-kernel launch cost that dominates a model this
        small (~8x faster per step at batch 256 on an H200, ``benchmarks/train.py``).
        ``None`` means on for ``device="cuda"``; ignored on CPU.
    n_threads : int | None
        torch CPU threads; ``None`` means all cores.
    seed : int
        Seeds Python, NumPy and torch at the start of :meth:`fit`, and the batch sampler.
    checkpoint_path : str | Path | None
        If given, the selected weights are saved there after :meth:`fit`.
    verbose : bool | None
        Progress bar (``None`` follows the CLI's ``-q``).
    desc : str | None
        Label of the progress bar.

    Attributes
    ----------
    history_ : dict of list
        ``train_loss``, ``val_loss`` (NaN without validation) and ``lr`` per epoch.
    best_epoch_ : int
        Epoch whose weights were kept (0-based).
    best_val_loss_ : float
        Validation loss of those weights (NaN without validation).
    fit_seconds_ : float
        Wall time of :meth:`fit`.
    """

    def __init__(self, model, *, epochs=50, batch_size=256, steps_per_epoch=None, lr=1e-3,
                 sampling="balanced", smoothing="gaussian", sigma=0.5, epsilon=0.1,
                 class_weighting=False, select="val_loss", n_classes=5,
                 freeze_first_conv=False, device="cpu", cuda_graph=None, n_threads=None,
                 seed=0, checkpoint_path=None, verbose=None, desc=None):
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.lr = lr
        self.sampling = sampling
        self.smoothing = smoothing
        self.sigma = sigma
        self.epsilon = epsilon
        self.class_weighting = class_weighting
        self.select = select
        self.n_classes = n_classes
        self.freeze_first_conv = freeze_first_conv
        self.device = device
        self.cuda_graph = cuda_graph
        self.n_threads = n_threads
        self.seed = seed
        self.checkpoint_path = checkpoint_path
        self.verbose = verbose
        self.desc = desc

    # -- helpers ---------------------------------------------------------------------------
    def _check(self):
        check_number("epochs", self.epochs, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        if self.steps_per_epoch is not None:
            check_number("steps_per_epoch", self.steps_per_epoch, low=1, integer=True)
        check_option("sampling", self.sampling, SAMPLINGS)
        check_option("smoothing", self.smoothing, ("gaussian", "onehot", "uniform"))
        check_option("select", self.select, ("val_loss", "last"))
        check_option("device", self.device, ("cpu", "cuda"))
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ParameterError("device='cuda' was requested but torch sees no CUDA GPU; "
                                 "use device='cpu' or install a CUDA build of torch.")

    def _target_table(self):
        table = make_targets(np.arange(self.n_classes), smoothing=self.smoothing,
                             n_classes=self.n_classes, sigma=self.sigma, epsilon=self.epsilon)
        return torch.as_tensor(np.asarray(table), dtype=torch.float32)

    def _to_device(self, X):
        return torch.from_numpy(X).to(self.device, dtype=torch.float32)

    @torch.no_grad()
    def _logits(self, windows, batch_size=1024):
        self.model.eval()
        out = []
        for lo in range(0, len(windows), batch_size):
            idx = np.arange(lo, min(lo + batch_size, len(windows)))
            out.append(self.model(self._to_device(windows.gather(idx))).float().cpu())
        if not out:
            return torch.zeros((0, self.n_classes))
        return torch.cat(out)

    def predict_proba(self, windows, batch_size=1024):
        """Class probabilities (softmax of the logits) in eval mode.

        Parameters
        ----------
        windows : WindowSet
            Windows to score.
        batch_size : int
            Windows per forward pass.

        Returns
        -------
        proba : ndarray of float64, shape (n_windows, n_classes)
        """
        return torch.softmax(self._logits(windows, batch_size), dim=1).double().numpy()

    def loss(self, windows):
        """Mean hard-label cross-entropy on ``windows`` (eval mode)."""
        logits = self._logits(windows)
        y = torch.as_tensor(windows.y)
        return float(torch.nn.functional.cross_entropy(logits, y))

    # -- training --------------------------------------------------------------------------
    def fit(self, train, val=None):
        """Train the model.

        Parameters
        ----------
        train : WindowSet
            Training windows.
        val : WindowSet | None
            Validation windows (hard labels); required with ``select="val_loss"``.

        Returns
        -------
        self : Trainer
        """
        t0 = time.perf_counter()
        self._check()
        if self.select == "val_loss" and (val is None or len(val) == 0):
            raise ParameterError("select='val_loss' needs validation windows, got none; pass "
                                 "val=... or use select='last'.")
        if len(train) == 0:
            raise ParameterError("no training windows; check the split and window starts.")
        torch.set_num_threads(int(self.n_threads or os.cpu_count() or 1))
        rng = set_seed(int(self.seed))
        model = self.model.to(self.device)
        if self.freeze_first_conv:
            model.freeze_first_temporal_conv(True)
        params = [p for p in model.parameters() if p.requires_grad]
        graph = self.device == "cuda" and self.cuda_graph is not False
        # the fused implementation updates all of HiSTN's small tensors in one kernel (same
        # algorithm; the whole CPU training step ~6 % faster than with the default loop). A
        # CUDA graph needs the capturable variant and the learning rate as a device tensor.
        lr0 = lr_at(self.lr, 0)
        optimizer = torch.optim.Adam(
            params, lr=torch.tensor(lr0, device=self.device) if graph else lr0, eps=ADAM_EPS,
            fused=True, capturable=graph)
        table = self._target_table().to(self.device)
        y_all = train.y
        weights = None
        if self.class_weighting:
            weights = torch.as_tensor(np.asarray(class_weights(y_all, self.n_classes)),
                                      dtype=torch.float32)
        y_all_t = torch.as_tensor(y_all)
        batch = int(self.batch_size)
        if self.sampling != "shuffle":
            draw = train.balanced_sampler(rng, exact=self.sampling == "balanced-exact")
            n_steps = int(self.steps_per_epoch or max(1, len(train) // batch))
        step = _Step(model, optimizer, getattr(model, "apply_constraints", None), graph)

        history = {"train_loss": [], "val_loss": [], "lr": []}
        best = (np.inf, -1, None)
        bar = progress(range(int(self.epochs)), desc=self.desc or "train", disable=(
            None if self.verbose is None else not self.verbose))
        for epoch in bar:
            lr = lr_at(self.lr, epoch)
            for group in optimizer.param_groups:
                if torch.is_tensor(group["lr"]):
                    group["lr"].fill_(lr)  # in place: a recorded CUDA graph reads it
                else:
                    group["lr"] = lr
            if self.sampling != "shuffle":
                batches = [draw(batch) for _ in range(n_steps)]
            else:
                perm = rng.permutation(len(train))
                batches = [perm[i:i + batch] for i in range(0, len(perm), batch)]
            model.train()
            # summed on the device: a float() per step would wait for the GPU every step
            total, count = torch.zeros((), device=self.device), 0
            for idx in batches:
                X = self._to_device(train.gather(idx))
                targets = table[y_all_t[idx].to(self.device)]
                w = None if weights is None else weights[idx].to(self.device)
                total += step(X, targets, w) * len(idx)
                count += len(idx)
            train_loss = float(total) / count
            history["train_loss"].append(train_loss)
            history["lr"].append(lr)
            val_loss = self.loss(val) if val is not None and len(val) else float("nan")
            history["val_loss"].append(val_loss)
            if self.select == "val_loss" and val_loss < best[0]:
                best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if self.select == "val_loss":
            model.load_state_dict(best[2])
            self.best_val_loss_, self.best_epoch_ = float(best[0]), int(best[1])
        else:
            self.best_epoch_ = int(self.epochs) - 1
            self.best_val_loss_ = history["val_loss"][-1]
        self.history_ = history
        model.eval()
        if self.checkpoint_path is not None:
            from ..models import save_checkpoint

            save_checkpoint(self.checkpoint_path, model,
                            extra={"best_epoch": self.best_epoch_, "seed": int(self.seed)})
        self.fit_seconds_ = time.perf_counter() - t0
        logger.debug("trained %d epochs in %.1f s (best epoch %d)", self.epochs,
                     self.fit_seconds_, self.best_epoch_)
        return self
