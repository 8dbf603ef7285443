"""Verdicts on models shaped like the real ones users bring (farm/samples_kinds.py): a YOLO-style
detector whose one output holds pixel boxes beside 0-1 scores, a face-detection stage with three
heads, a text recogniser's per-step classes, a binary classifier. Through real workers on cpu,
arm and fpga; every INT8 variant the farm passes is then checked here, independently, against the
original on inputs the farm never saw."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import col, select

from db.engine import session_scope
from db.models import Variant
from farm import samples_kinds
from farm.core.modelfile import ModelFormat
from tests.conftest import Farm, built_once
from tests.integration.test_convert import submit, wait_for_tasks
from workers.backends import all_backends
from workers.runtime import BuiltVariant
from workers.sources import load_source

pytestmark = pytest.mark.integration
CLASSES = ("cpu", "arm", "fpga")
INT8_RUNTIMES = [("arm", "arm"), ("arm", "arm-ort"), ("cpu", "cpu"), ("fpga", "fpga")]  # arm: TFLite and ORT
KINDS = {  # each model's outputs, in order, and the kind each is judged as
    "detector": ["values"],
    "face_stage": ["classes", "values", "values"],
    "sequence": ["sequence"],
    "binary": ["binary"],
}
FRESH_INPUTS = {  # inputs drawn apart from the calibration file's, for the independent check
    "detector": lambda: samples_kinds.rectangle_scenes(60, seed=500)[0],
    "face_stage": lambda: samples_kinds.face_crops(60, seed=501)[0],
    "sequence": lambda: samples_kinds.text_lines(60, seed=502)[0],
    "binary": lambda: samples_kinds.tabular_rows(60, seed=503)[0],
}


@pytest.fixture(scope="session")
def kind_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    return {
        name: built_once(tmp_path_factory, f"kind-{name}", write)
        for name, write in samples_kinds.WRITERS.items()
    }


def test_every_class_ends_with_a_verified_int8_variant_that_stays_close_to_the_original(
    shared_farm: Farm, kind_models: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    farm = shared_farm
    jobs = {
        name: submit(
            farm, paths["model"], "--calib", str(paths["calib"]), "--precision", "int8", hw="cpu,arm,fpga"
        )
        for name, paths in kind_models.items()
    }
    tasks = wait_for_tasks(farm, list(jobs.values()), timeout=400)
    assert [(t.state, t.error) for t in tasks] == [("succeeded", None)] * len(tasks)
    for name, job_id in jobs.items():
        rows = _report(farm, job_id)
        int8 = [row for row in rows if row["precision"] == "int8"]
        assert sorted((row["hardware"], row["backend"]) for row in int8) == INT8_RUNTIMES, name
        for row in int8:
            assert row["passed"], (name, row["hardware"], row["failure"], row["notes"])
            assert [output["kind"] for output in row["outputs"]] == KINDS[name]
            assert row["verify_samples"] == 60 and not row["thin_evidence"]  # a fifth of 300
            for output in row["outputs"]:
                assert output["rule"] == "agreement" and output["collapsed_channels"] == []
                if output["kind"] == "values":
                    assert output["worst_channel_error"] <= 0.25, (name, row["hardware"], output)
        _check_independently(farm, name, kind_models[name]["model"], job_id, tmp_path / name)


def _check_independently(farm: Farm, name: str, model: Path, job_id: str, scratch: Path) -> None:
    """Each passed INT8 variant against the original on fresh inputs: every output channel's RMS
    noise at most a quarter of its spread, and deciding outputs agreeing on 90% or more."""
    scratch.mkdir()
    source = load_source(model, ModelFormat.KERAS, [], [], scratch)
    feeds = {source.inputs[0].name: FRESH_INPUTS[name]()}
    expected = source.run(feeds)
    for variant in _int8_variants(farm, job_id):
        built = BuiltVariant(
            Path(farm.settings.artifact_root) / variant.artifact_key,
            variant.format,
            "int8",
            "",
            [],
            variant.details,
        )
        actual = all_backends()[variant.backend].load(built, source.output_names)(feeds)
        for kind, want, got in zip(KINDS[name], expected, actual, strict=True):
            where = f"{name} {variant.hardware} ({variant.details.get('recipe')})"
            if kind in ("classes", "sequence"):
                agreement = np.mean(np.argmax(got, axis=-1) == np.argmax(want, axis=-1))
                assert agreement >= 0.9, (where, agreement)
            elif kind == "binary":
                assert np.mean((got > 0.5) == (want > 0.5)) >= 0.9, where
            channels = want.reshape(-1, want.shape[-1]), got.reshape(-1, want.shape[-1])
            noise = np.sqrt(np.mean((channels[1] - channels[0]) ** 2, axis=0)) / channels[0].std(axis=0)
            assert noise.max() <= 0.25, (where, noise.round(3))


def test_a_detector_whose_scores_collapse_fails_and_the_report_names_its_output(
    shared_farm: Farm, kind_models: dict[str, dict[str, Path]]
) -> None:
    """Without the recipe search, Quark's XINT8 puts the detector's boxes and scores under one
    power-of-two scale and every score comes out 0: a mean relative to the tensor's scale passed
    that before; now its collapsed channels fail it, and the report says which output failed."""
    farm, paths = shared_farm, kind_models["detector"]
    job_id = submit(
        farm, paths["model"], "--calib", str(paths["calib"]), "--precision", "int8", "--no-search", hw="fpga"
    )
    wait_for_tasks(farm, [job_id])
    [row] = [row for row in _report(farm, job_id) if row["precision"] == "int8"]
    assert not row["passed"]
    [output] = row["outputs"]
    assert output["collapsed_channels"] == [4, 5, 6, 7] and output["channel_axis"] == 2
    assert row["failure"].startswith(
        "channels 4, 5, 6, 7 (axis 2) constant in the variant, varying in the original"
    )
    compact = farm.cli("report", job_id)
    assert (
        compact.returncode == 0 and "FAIL" in compact.stdout and "constant in the variant" in compact.stdout
    )
    wide = farm.cli("report", job_id, "--wide").stdout
    assert ["fpga", "fpga onnx int8", "Identity:0", "values", "agreement"] in _cells(wide), wide


def test_a_named_output_kind_is_used_and_shown(
    shared_farm: Farm, kind_models: dict[str, dict[str, Path]]
) -> None:
    """Box offsets named as channels along axis 1 (what they are inferred as anyway), the face
    probability named classes: the report marks both as named, and the recipe search's note says
    what was kept."""
    farm, paths = shared_farm, kind_models["face_stage"]
    named = ("--output-kind", "Identity:0=classes", "--output-kind", "Identity_1:0=values:1")
    job_id = submit(
        farm, paths["model"], "--calib", str(paths["calib"]), "--precision", "int8", *named, hw="cpu"
    )
    wait_for_tasks(farm, [job_id])
    [row] = [row for row in _report(farm, job_id) if row["precision"] == "int8"]
    assert [(o["kind"], o["kind_named"]) for o in row["outputs"]] == [
        ("classes", True),
        ("values", True),
        ("values", False),
    ]
    wide = farm.cli("report", job_id, "--wide").stdout
    assert ["cpu", "cpu onnx int8", "Identity:0", "classes (named)", "agreement"] in _cells(wide), wide


def _report(farm: Farm, job_id: str) -> list[dict]:
    result = farm.cli("report", job_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["variants"]


def _cells(table: str) -> list[list[str]]:
    """The first five cells of each line of a printed table (cells apart by two spaces or more)."""
    return [re.split(r"\s{2,}", line.strip())[:5] for line in table.splitlines()]


def _int8_variants(farm: Farm, job_id: str) -> list[Variant]:
    with session_scope(farm.settings.database_url) as session:
        query = select(Variant).where(col(Variant.job_id) == job_id, col(Variant.precision) == "int8")
        return list(session.exec(query))
