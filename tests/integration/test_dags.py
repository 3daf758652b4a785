"""DAG integrity in a fresh interpreter: parsing the DAG files imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

from tests.kit.paths import REPO


def test_parsing_the_dags_imports_neither_great_expectations_nor_pandas():
    """The DAG processor parses these files every few seconds: nothing heavy at the top."""
    code = (
        "import sys, runpy, glob\n"
        f"sys.path.insert(0, {str(REPO / 'plugins')!r})\n"
        f"for f in sorted(glob.glob({str(REPO / 'dags' / '*.py')!r})):\n"
        "    runpy.run_path(f)\n"
        "heavy = [m for m in ('great_expectations', 'pandas', 'paramiko')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
