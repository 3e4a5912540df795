"""What a training run writes for people and tools to read while it runs.

- ``RUN/train.log`` and ``<SAVE_DIR>/logs_txt/<DATASET.NAME>.log``: plain text, one line per
  event, flushed at every line (``tail -f`` works; the second path is where the reproduction
  study's notebook looked for its log; it is appended to by every run on that dataset, each line
  naming its run folder).
- ``RUN/metrics.jsonl`` (one JSON object per evaluated or trained epoch) and ``RUN/metrics.csv``
  (the same rows as a table, rewritten atomically after every epoch).
- TensorBoard scalars in ``RUN/tensorboard/`` when ``torch.utils.tensorboard`` can be imported
  (the ``tensorboard`` package is optional).

Only rank 0 creates a :class:`RunLogger`; the other ranks get a :class:`NullLogger`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ssformer import run_files
from ssformer.io.atomic import write_text_atomic

__all__ = ["NullLogger", "RunLogger"]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger:
    """Text log, metrics files and optional TensorBoard for one run folder."""

    def __init__(
        self,
        run_dir: Path,
        shared_log: Path | None = None,
        echo: TextIO | str | None = "stdout",
        tensorboard: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._echo = echo  # a stream, "stdout" (the console at each call) or None
        # Kept open for the run's lifetime (closed in close()); every line is flushed.
        log_path = self.run_dir / run_files.TRAIN_LOG
        self._files: list[TextIO] = [open(log_path, "a", encoding="utf-8")]  # noqa: SIM115
        if shared_log is not None:
            shared_log.parent.mkdir(parents=True, exist_ok=True)
            self._files.append(open(shared_log, "a", encoding="utf-8"))  # noqa: SIM115
        self.shared_log = shared_log
        self.metrics_jsonl = self.run_dir / run_files.METRICS_JSONL
        self.metrics_csv = self.run_dir / run_files.METRICS_CSV
        self._rows: list[dict[str, Any]] = []
        self._writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the tensorboard package is optional
                self._writer = None
            else:
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    @property
    def has_tensorboard(self) -> bool:
        return self._writer is not None

    def log(self, message: str, *, echo: bool = True) -> None:
        """One line, time-stamped, to every text log (flushed) and, with ``echo``, to the
        console."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        for index, handle in enumerate(self._files):
            prefix = f"{stamp} [{self.run_dir}] " if index > 0 else f"{stamp} "
            try:
                for line in message.splitlines() or [""]:
                    handle.write(prefix + line + "\n")
                handle.flush()
            except OSError:  # a full disk: the console still gets the line, the run's error wins
                continue
        if echo and self._echo is not None:
            # "stdout": the console at the time of the call (not the stream at import time)
            stream = sys.stdout if self._echo == "stdout" else self._echo
            print(message, file=stream, flush=True)

    def restore_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rewrite the metrics files with ``rows`` (on resume: the checkpoint's history)."""
        self._rows = [dict(row) for row in rows]
        text = "".join(json.dumps(self._clean(row)) + "\n" for row in self._rows)
        write_text_atomic(self.metrics_jsonl, text)
        self._write_csv()

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one epoch's row to ``metrics.jsonl``, rewrite ``metrics.csv``, add scalars."""
        row = dict(row)
        self._rows.append(row)
        with open(self.metrics_jsonl, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(self._clean(row)) + "\n")
            handle.flush()
        self._write_csv()
        if self._writer is not None:
            step = int(row.get("epoch", len(self._rows)))
            for key, value in row.items():
                if (
                    key != "epoch"
                    and isinstance(value, (int, float))
                    and not isinstance(value, bool)
                ):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    @staticmethod
    def _clean(row: dict[str, Any]) -> dict[str, Any]:
        return {key: _json_value(value) for key, value in row.items()}

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self._rows:
            columns.extend(key for key in row if key not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self._rows:
            writer.writerow(row)
        write_text_atomic(self.metrics_csv, buffer.getvalue())

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class NullLogger:
    """Stands in for :class:`RunLogger` on ranks other than 0: writes nothing."""

    has_tensorboard = False

    def log(self, message: str, *, echo: bool = True) -> None:
        del message, echo

    def restore_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        del rows

    def log_metrics(self, row: dict[str, Any]) -> None:
        del row

    def close(self) -> None:
        return None
