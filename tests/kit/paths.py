"""Where this repository and its virtualenv are, for the processes the kit starts."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
AIRFLOW = VENV_BIN / "airflow"
