"""The layers point one way (README "Layout"): import-linter's contracts in pyproject.toml, no
import cycle anywhere, and what each entry point actually loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from tests.farm.cli.test_imports import imported_by

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("farm", "db", "queues", "workers")


def test_the_layer_contracts_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph(*PACKAGES)  # TYPE_CHECKING imports count: they are edges too
    cycles = {
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    }
    assert cycles == set()


def test_the_cli_loads_no_worker_code() -> None:
    loaded = imported_by("import farm.cli; import farm.cli.cluster, farm.cli.fleet, farm.cli.scoring")
    assert sorted(name for name in loaded if name.split(".")[0] == "workers") == []


def test_db_and_queues_load_neither_client_nor_worker_code() -> None:
    loaded = imported_by("import db.engine, db.store, db.shards, db.models, queues.app, queues.names")
    above = ("farm.cli", "farm.client", "farm.samples", "workers")
    assert sorted(name for name in loaded if name.startswith(above)) == []


def test_the_kernel_loads_nothing_above_it() -> None:
    kernel = sorted(path.stem for path in (ROOT / "farm" / "core").glob("*.py") if path.stem != "__init__")
    loaded = imported_by("; ".join(f"import farm.core.{name}" for name in kernel))
    above = ("farm.cli", "farm.client", "farm.samples", "db", "queues", "workers")
    assert sorted(name for name in loaded if name.startswith(above)) == []
