"""The package's layers hold: no import reaches up a layer or across to a sibling, no cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit.import_graph import LAYERS, Graph, read_graph


@pytest.fixture(scope="module")
def graph() -> Graph:
    return read_graph()


def test_no_import_reaches_up_a_layer_or_across(graph: Graph) -> None:
    assert graph.wrong_way() == []


def test_no_modules_import_each_other(graph: Graph) -> None:
    assert graph.cycles() == []


def test_every_module_has_a_layer(graph: Graph) -> None:
    parts = {graph.part(m) for m in graph.modules} - {"review_ingest"}
    assert parts == {p for layer in LAYERS for p in layer}
    for module in graph.modules:
        if module != "review_ingest":
            graph.layer(module)


def test_errors_imports_nothing_of_the_package(graph: Graph) -> None:
    assert [b for a, b in graph.edges if a == "review_ingest.errors"] == []


def test_lazy_imports_count(graph: Graph) -> None:
    """An import inside a function ties two modules as much as one at the top."""
    assert ("review_ingest.tasks.upload_ingest", "review_ingest.pipeline.ingest") in graph.edges


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "review_ingest"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_an_import_up_a_layer_and_a_cycle_are_found(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/reading.py": "def f():\n    from review_ingest.pipeline import ingest\n",
            "core/rules.py": "from review_ingest.core import reading\n",
            "pipeline/__init__.py": "",
            "pipeline/ingest.py": "from review_ingest.core.rules import x\n",
            "store/__init__.py": "",
            "store/models.py": "from review_ingest.sources import folders\n",
            "sources/__init__.py": "",
            "sources/folders.py": "",
        },
    )
    found = read_graph(package)
    assert found.wrong_way() == [
        ("review_ingest.core.reading", "review_ingest.pipeline.ingest"),
        ("review_ingest.store.models", "review_ingest.sources.folders"),
    ]
    assert found.cycles() == [
        [
            "review_ingest.core.reading",
            "review_ingest.core.rules",
            "review_ingest.pipeline.ingest",
        ]
    ]
