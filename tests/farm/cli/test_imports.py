"""The CLI starts without the heavy libraries: every `farm` command pays for what it imports, and a
cached resubmission is mostly the CLI's own start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Worker-side or only-sometimes needed: numpy (calibration files), protobuf (.pb checks), the
# toolchains, Alembic (migrations, imported only when the schema is behind).
KEPT_OUT = ("numpy", "google.protobuf", "tensorflow", "onnxruntime", "onnx", "tf2onnx", "alembic", "pyarrow")


def imported_by(statement: str) -> set[str]:
    probe = f"import sys\n{statement}\nprint(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


LIGHT_ENTRY_POINTS = [
    "import farm.cli",
    "from workers.backends import all_backends; all_backends()",
    "from farm.core.hosts import class_problems; class_problems('cpu')",  # what `farm up` asks
]


@pytest.mark.parametrize("statement", LIGHT_ENTRY_POINTS)
def test_cli_and_registry_leave_heavy_libraries_unimported(statement: str) -> None:
    loaded = imported_by(statement)
    heavy = sorted(name for name in KEPT_OUT if name in loaded)
    assert heavy == [], f"{statement!r} imported {heavy}"


def test_the_probe_sees_what_is_imported() -> None:
    assert "numpy" in imported_by("import farm.core.calibfile")
