"""``gx_compat.lean_import``: Great Expectations loaded without ``scipy.stats`` and ``altair``
validates every template's rows and builds their Data Docs as it does with them, never loading
them; the stand-ins turn into the real modules the moment something reads from them; batches
get no fingerprint (``gx_compat.batch_fingerprint``). Each case runs in a fresh interpreter, as
a command or a worker starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

VALIDATE_EVERY_TEMPLATE = """
import json, sys
from pathlib import Path
from review_ingest.core.merchants import default_merchant
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.quality.validation import FileRows, Validation
from tests.unit import test_row_rules

validation = Validation(Path(sys.argv[1]) / "docs", Path(sys.argv[1]) / "results")
errors, result_ids = {}, []
for template_id in sorted(TEMPLATES):
    template = TEMPLATES[template_id]
    records = read_file(test_row_rules.DATA[template_id], template).records
    rows = [FileRows("import-1", "rules.csv", records)]
    checks = validation.check_files(
        rows, template, default_merchant(template_id), test_row_rules.AS_OF, "run-" + template_id
    )
    errors[template_id] = [
        [e.line, e.column, e.code] for e in checks["import-1"].errors
    ]
    result_ids.append(checks["import-1"].result_id)
validation.build_docs(result_ids)
pages = sorted(str(p.relative_to(sys.argv[1])) for p in Path(sys.argv[1]).rglob("*.html"))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "altair"))
kinds = {name: type(sys.modules[name]).__name__ for name in ("scipy.stats", "altair")}
print(json.dumps({"errors": errors, "pages": len(pages), "loaded": loaded, "kinds": kinds}))
"""


def run_python(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter (the package and tests importable); its last JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_suite_validates_and_builds_its_docs_as_with_the_libraries_loaded(tmp_path):
    deferred = run_python(VALIDATE_EVERY_TEMPLATE, str(tmp_path / "deferred"))
    plain = run_python(
        "import great_expectations\n" + VALIDATE_EVERY_TEMPLATE, str(tmp_path / "plain")
    )

    assert deferred["errors"] == plain["errors"]
    assert all(len(found) >= 5 for found in deferred["errors"].values())
    assert deferred["pages"] == plain["pages"] >= 4
    # The stand-ins are still there: nothing of scipy.stats or altair ran.
    assert deferred["kinds"] == {"scipy.stats": "_Deferred", "altair": "_Deferred"}
    assert plain["kinds"] == {"scipy.stats": "module", "altair": "module"}
    heavy = ("scipy.stats.", "scipy.special", "altair.")
    assert not [name for name in deferred["loaded"] if name.startswith(heavy)]
    assert len([name for name in plain["loaded"] if name.startswith(heavy)]) > 100


def test_a_stand_in_becomes_the_real_module_when_read():
    found = run_python(
        """
import json, math, sys
from review_ingest.quality.gx_compat import lean_import
lean_import.load()
from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
before = type(sys.modules["scipy.stats"]).__name__
entropy = kl.stats.entropy([0.5, 0.5])  # read through the module Great Expectations holds
import altair
chart = altair.Chart.__module__
print(json.dumps({
    "before": before,
    "after": type(sys.modules["scipy.stats"]).__name__,
    "real": sys.modules["scipy.stats"] is sys.modules["scipy"].stats,
    "entropy": entropy, "ln2": math.log(2),
    "chart": chart,
}))
"""
    )
    assert found["before"] == "_Deferred"
    assert found["after"] == "module"
    assert found["real"] is True
    assert found["entropy"] == found["ln2"]
    assert found["chart"].startswith("altair.")


FINGERPRINT = """
import json
import pandas as pd
import great_expectations as gx
from review_ingest.quality import gx_compat
if {loaded}:
    gx_compat.load()
batch = (
    gx.get_context(mode="ephemeral").data_sources.add_pandas("p").add_dataframe_asset("a")
    .add_batch_definition_whole_dataframe("b")
    .get_batch(batch_parameters={{"dataframe": pd.DataFrame({{"x": ["a", "b"]}})}})
)
print(json.dumps(sorted(batch.batch_markers)))
"""


def test_batches_get_no_fingerprint():
    assert "pandas_data_fingerprint" in run_python(FINGERPRINT.format(loaded=False))
    assert run_python(FINGERPRINT.format(loaded=True)) == ["ge_load_time"]


def test_an_expectation_that_needs_scipy_still_runs():
    # The KL divergence expectation reads scipy.stats when it validates: it must get the real one.
    found = run_python(
        """
import json
import pandas as pd
from review_ingest.quality.gx_compat import lean_import
gx = lean_import.load()
context = gx.get_context(mode="ephemeral")
batch = (
    context.data_sources.add_pandas("p").add_dataframe_asset("a")
    .add_batch_definition_whole_dataframe("b")
    .get_batch(batch_parameters={"dataframe": pd.DataFrame({"x": ["a", "a", "b", "b"]})})
)
partition = {"values": ["a", "b"], "weights": [0.5, 0.5]}
near = batch.validate(gx.expectations.ExpectColumnKLDivergenceToBeLessThan(
    column="x", partition_object=partition, threshold=0.1))
far = batch.validate(gx.expectations.ExpectColumnKLDivergenceToBeLessThan(
    column="x", partition_object={"values": ["a", "b"], "weights": [0.99, 0.01]}, threshold=0.1))
print(json.dumps({"near": near.success, "far": far.success}))
"""
    )
    assert found == {"near": True, "far": False}
