"""Live views of an acquisition: a rich terminal dashboard, or plain log lines."""

from __future__ import annotations

import time

import numpy as np

from ..utils.logging import logger

_STATE_STYLE = {"ok": "green", "railed": "bold red", "flat": "yellow", "noisy": "magenta"}


class LogView:
    """Log one status line every ``interval_s`` seconds (``--no-tui``)."""

    def __init__(self, interval_s=5.0):
        self.interval_s = interval_s
        self._last = 0.0

    def start(self):
        """Begin (nothing to set up)."""
        self._last = time.monotonic()

    def update(self, state):
        """Log a status line if ``interval_s`` has passed."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        self._last = now
        bad = [f"{c}={s}" for c, s in zip(state["ch_names"], state["channel_state"], strict=True)
               if s != "ok"]
        rate = state["achieved_sfreq"]
        logger.info("%.1f s recorded, %.2f Hz, %d dropped, %d stalls%s%s", state["elapsed_s"],
                    rate if np.isfinite(rate) else float("nan"), state["dropped"],
                    state["stalls"], ", bad: " + " ".join(bad) if bad else "",
                    f", prediction: {state['prediction']}" if state["prediction"] else "")

    def stop(self):
        """End (nothing to tear down)."""


class TerminalView:
    """A rich live dashboard: per-channel quality, band-power bars, rate, drops, markers."""

    def __init__(self):
        self._live = None

    def start(self):
        """Open the live display."""
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(stderr=True), refresh_per_second=4,
                          transient=False)
        self._live.start()

    def update(self, state):
        """Redraw with ``state`` (see :meth:`Acquisition.state`)."""
        if self._live is not None:
            self._live.update(render(state))

    def stop(self):
        """Close the live display."""
        if self._live is not None:
            self._live.stop()
            self._live = None


def render(state):
    """Build the rich renderable of an acquisition ``state``."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rate = state["achieved_sfreq"]
    head = Text.assemble(
        (f"{state['source']}  ", "bold"),
        f"{state['elapsed_s']:8.1f} s  ",
        f"{rate:7.2f} / {state['sfreq']:g} Hz  " if np.isfinite(rate) else "  -- Hz  ",
        (f"dropped {state['dropped']}  ", "red" if state["dropped"] else ""),
        (f"stalls {state['stalls']}  ", "red" if state["stalls"] else ""),
        f"buffer {state['buffered']}  ",
        f"-> {state['file']}" if state["file"] else "",
    )
    table = Table(box=None, pad_edge=False, expand=False)
    table.add_column("ch")
    table.add_column("quality")
    table.add_column("line", justify="right")
    feats = state["features"]
    names = state["band_names"]
    for b in names:
        table.add_column(b, min_width=8)
    scale = None
    if feats is not None:
        vals = np.log10(np.maximum(feats, 1e-12)) if state["kind"] == "power" else feats
        lo, hi = float(np.min(vals)), float(np.max(vals))
        scale = (vals - lo) / (hi - lo) if hi > lo else np.zeros_like(vals)
    for c, (name, qual) in enumerate(zip(state["ch_names"], state["channel_state"], strict=True)):
        line = state["line_noise"][c]
        row = [name, Text(qual, style=_STATE_STYLE.get(qual, "")),
               "-" if not np.isfinite(line) else f"{line:.1f}"]
        for b in range(len(names)):
            row.append("" if scale is None else "█" * int(round(scale[c, b] * 8)))
        table.add_row(*row)
    parts = [head, table]
    if state["prediction"]:
        parts.append(Text("prediction: " + ", ".join(
            f"{k}={v}" for k, v in state["prediction"].items()), style="bold cyan"))
    if state["events"]:
        parts.append(Text("\n".join(state["events"][-6:]), style="dim"))
    parts.append(Text("Ctrl-C or q to stop; other keys are markers when keyboard markers "
                      "are on", style="dim"))
    return Group(*parts)
