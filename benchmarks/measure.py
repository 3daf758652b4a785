"""How the benchmarks measure and report: timed commands with their peak memory, figures
against their targets, results written as JSON beside the run's commit."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kit.paths import REPO

OUT_DIR = REPO / "benchmarks" / "out"


@dataclass
class Run:
    """One timed command: its wall time, its own peak memory, its exit code."""

    seconds: float
    max_rss_mb: float
    returncode: int


def run_timed(cmd: list[str], env: dict[str, str], log_dir: Path, label: str) -> Run:
    """Run a command to completion; its wall time and its own max RSS (via ``os.wait4``)."""
    out, err = log_dir / f"{label}.out", log_dir / f"{label}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode)


def expect(ok: bool, what: str, log_dir: Path, label: str) -> None:
    """Stop the benchmark when a command did not do what it is timed for."""
    if not ok:
        tail = (log_dir / f"{label}.err").read_text(errors="replace")[-3000:]
        raise SystemExit(f"benchmark: {what} ({label}); stderr tail:\n{tail}")


@dataclass(frozen=True)
class Ratio:
    """A figure against its target; ``paired`` is the median of the per-round ratios."""

    name: str
    value: float
    target: float
    unit: str = "x"
    below: bool = False  # strictly below the target (else at most)
    paired: float | None = None

    @property
    def met(self) -> bool:
        return self.value < self.target if self.below else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        op = "<" if self.below else "<="
        return {
            "value": round(self.value, 3),
            "paired_median": None if self.paired is None else round(self.paired, 3),
            "target": f"{op} {self.target:g}{self.unit}",
            "met": self.met,
            "value_over_target": round(self.value / self.target, 2),
        }


def print_verdicts(verdicts: list[Ratio]) -> None:
    """Each target: the value, the paired median when there is one, the target, the verdict."""
    print(f"\n{'target':<60} {'value':>9} {'paired':>8} {'target':>10}  verdict")
    for r in verdicts:
        d = r.as_dict()
        paired = "-" if r.paired is None else f"{r.paired:.3f}"
        verdict = "met" if r.met else f"MISSED ({d['value_over_target']}x the target)"
        print(f"{r.name:<60} {d['value']:>9.3f} {paired:>8} {d['target']:>10}  {verdict}")


def git_state() -> dict[str, str]:
    """The commit measured, and whether the pipeline's code differed from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": git("status", "--porcelain", "plugins", "dags"),
    }


def write_json(out: Path, body: Any) -> None:
    """``body`` as indented JSON in ``out``, its folder made if need be."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
