"""A Keras-style progress bar that behaves in a terminal and in a log file."""

from __future__ import annotations

import sys
import time


class Progbar:
    """Progress over ``target`` steps.

    In a terminal (verbose=1) the line is redrawn in place at most every 0.1 s;
    when output goes to a file or pipe, or with verbose=2, only the final line of
    each epoch is printed, so logs stay readable.
    """

    def __init__(self, target, verbose=1, width=30, stream=None):
        self.target, self.verbose, self.width = target, verbose, width
        self.stream = stream or sys.stdout
        self.live = verbose == 1 and getattr(self.stream, "isatty", lambda: False)()
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.seen = 0

    def _line(self, current, logs) -> str:
        from hpnn.training.callbacks import format_logs

        elapsed = time.perf_counter() - self.start
        target = self.target or current
        filled = int(self.width * current / target) if target else self.width
        bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=")
        bar = bar.ljust(self.width, ".")
        per_step = elapsed / max(current, 1)
        timing = f"{elapsed:.0f}s {per_step * 1e3:.0f}ms/step"
        if current < target:
            timing = f"ETA: {per_step * (target - current):.0f}s"
        width = len(str(target))
        text = format_logs(logs)
        return f"{current:>{width}}/{target} [{bar}] - {timing}" + (f" - {text}" if text else "")

    def update(self, current, logs=None) -> None:
        self.seen = current
        if not self.live:
            return
        now = time.perf_counter()
        if now - self.last_draw < 0.1 and current != self.target:
            return
        self.last_draw = now
        self.stream.write("\r" + self._line(current, logs) + "\033[K")
        self.stream.flush()

    def finish(self, logs=None) -> None:
        if not self.verbose:
            return
        line = self._line(self.target or self.seen, logs)
        self.stream.write(("\r" + line + "\033[K\n") if self.live else line + "\n")
        self.stream.flush()
