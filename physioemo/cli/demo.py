"""``physioemo demo``: the main job end to end on built-in defaults."""

from __future__ import annotations

HELP = "run the main job end to end on built-in defaults (synthetic data)"
DESCRIPTION = """Run physioemo end to end on built-in defaults, with no headset and no DREAMER
licence needed: synthetic EEG goes through the signal pipeline (zero-phase band-pass,
streaming filter, band power and differential entropy per 1-s window); the command prints
what it found and writes plots and a summary to --out.

example:
  physioemo demo --out demo-out
"""


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("--out", default="demo-out", metavar="DIR",
                        help="output directory (default: demo-out)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the synthetic recording in seconds (default: 60)")


def synthetic_eeg(n_channels, n_times, sfreq, seed=0):
    """Seeded 1/f EEG-like noise with a 10 Hz alpha rhythm on the posterior half.

    Parameters
    ----------
    n_channels, n_times : int
        Output shape.
    sfreq : float
        Sampling frequency in Hz.
    seed : int
        Random seed.

    Returns
    -------
    data : ndarray, shape (n_channels, n_times)
        Signal in microvolts.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal((n_channels, n_times)), axis=-1)
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    spec[:, 1:] /= np.sqrt(freqs[1:])
    spec[:, 0] = 0
    data = np.fft.irfft(spec, n=n_times, axis=-1)
    data *= 10.0 / data.std(axis=-1, keepdims=True)
    t = np.arange(n_times) / sfreq
    data[n_channels // 2:] += 8.0 * np.sin(2 * np.pi * 10.0 * t)
    return data


def signal_summary(data, sfreq, out, *, title, channel_names=None):
    """Filter, compute band power/DE per 1-s window, plot, and return a text table.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        The signal.
    sfreq : float
        Sampling frequency in Hz.
    out : Path
        Folder for the plot (``<title>_bands.png``).
    title : str
        Name of the signal, used for the file name and plot title.
    channel_names : list of str | None
        Channel labels.

    Returns
    -------
    table : str
        Mean relative band power per channel, as text.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..dsp import (
        FREQ_BANDS,
        StreamingFilter,
        band_power,
        differential_entropy,
        filter_data,
        sliding_windows,
    )

    n_channels = data.shape[0]
    names = channel_names or [f"ch{i + 1}" for i in range(n_channels)]
    h_freq = min(45.0, 0.45 * sfreq)
    filtered = filter_data(data, sfreq, 1.0, h_freq)
    win = int(round(sfreq))
    windows = sliding_windows(filtered, win, win)            # (n_ch, n_win, win)
    rel = band_power(windows.swapaxes(0, 1), sfreq, relative=True).mean(axis=0)
    de = differential_entropy(windows.swapaxes(0, 1), sfreq).mean(axis=0)
    online = StreamingFilter(sfreq, n_channels, l_freq=1.0, h_freq=h_freq)
    chunks = [online.process(c) for c in np.array_split(data, max(1, data.shape[1] // 10),
                                                         axis=1)]
    causal = filter_data(data, sfreq, 1.0, h_freq, phase="causal")
    stream_err = float(np.max(np.abs(np.concatenate(chunks, axis=1) - causal)))

    bands = list(FREQ_BANDS)
    fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
    im = ax.imshow(rel.T * 100, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(bands)), bands)
    ax.set_xticks(range(n_channels), names, rotation=90)
    ax.set_title(f"{title}: relative band power per channel (%)")
    fig.colorbar(im, ax=ax)
    fig.savefig(out / f"{title}_bands.png", dpi=100)
    plt.close(fig)

    lines = [f"{'channel':>8} " + " ".join(f"{b:>7}" for b in bands) + "   DE(alpha)"]
    alpha = bands.index("alpha")
    for name, row, d in zip(names, rel, de, strict=True):
        lines.append(f"{name:>8} " + " ".join(f"{100 * v:6.1f}%" for v in row)
                     + f"   {d[alpha]:8.3f}")
    lines.append(f"streaming filter vs offline causal filter: max |diff| = {stream_err:.2e}")
    return "\n".join(lines)


def run(args):
    """Run the demo."""
    from pathlib import Path

    from ..utils.config import write_run_metadata
    from ..utils.logging import logger

    seed = 0 if args.seed is None else args.seed
    out = Path(args.out)
    write_run_metadata(out, {"out": str(out), "seconds": args.seconds}, seed=seed,
                       command=["demo"])
    sfreq = 250.0
    data = synthetic_eeg(8, int(args.seconds * sfreq), sfreq, seed=seed)
    logger.info("signal pipeline on %d s of synthetic 8-channel EEG at %g Hz", args.seconds,
                sfreq)
    print(signal_summary(data, sfreq, out, title="synthetic"))
    print(f"\nresults in {out.resolve()}")
    return 0
