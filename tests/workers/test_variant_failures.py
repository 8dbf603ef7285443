"""One precision failing is that variant's failure, whatever it raised: the class's other
precisions are still built. A backend asked for a precision it does not build is a programming
error on the worker (plans never ask it; the client refuses such precisions at submit), never
the user's UsageError. Real backends, a real model, a real artifact store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from farm.core.artifacts import open_store, sha256_of
from farm.core.errors import UsageError
from farm.core.jobspec import ConvertOptions
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings
from farm.samples import write_mlp_onnx
from workers.backends import all_backends
from workers.backends.gpu_tensorrt import engine_onnx
from workers.calibration import Calibration, synthetic_calibration
from workers.convert import ConversionRequest, VariantBuilder, VariantOutcome, plan_variants
from workers.sources import SourceModel, load_source
from workers.tasks import build_or_failure


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mlp_onnx(tmp_path_factory.mktemp("mlp") / "mlp.onnx")


@pytest.fixture(scope="module")
def onnx_source(mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    return load_source(mlp, ModelFormat.ONNX, [], [], tmp_path_factory.mktemp("onnx-source"))


@pytest.fixture
def settings(tmp_path: Path) -> FarmSettings:
    return FarmSettings(
        home=tmp_path / "home",
        artifact_root=str(tmp_path / "artifacts"),
        database_url=f"sqlite:///{tmp_path / 'farm.db'}",
        bench_window_s=0.02,
        bench_seconds=0.2,
        bench_max_batch=4,
        calib_samples=8,
        verify_samples=8,
    )


@pytest.mark.parametrize("backend", ["cpu", "fpga", "gpu-ort"])
def test_a_backend_asked_for_a_precision_it_does_not_build_is_a_programming_error(
    backend: str, onnx_source: SourceModel, settings: FarmSettings, tmp_path: Path
) -> None:
    calibration = synthetic_calibration(onnx_source.inputs, samples=4, held_out=4)
    with pytest.raises(ValueError, match=f"{backend} does not build fp64") as raised:
        all_backends()[backend].convert(onnx_source, "fp64", calibration, tmp_path, settings)
    assert not isinstance(raised.value, UsageError)


def test_tensorrt_asked_for_a_precision_it_does_not_build_is_a_programming_error(
    onnx_source: SourceModel, tmp_path: Path
) -> None:
    calibration = synthetic_calibration(onnx_source.inputs, samples=4, held_out=4)
    with pytest.raises(ValueError, match="gpu-tensorrt does not build fp64") as raised:
        engine_onnx(onnx_source, "fp64", calibration, tmp_path)
    assert not isinstance(raised.value, UsageError)


def test_arm_asked_for_a_precision_it_does_not_build_is_a_programming_error(
    source: SourceModel, calibration: Calibration, settings: FarmSettings, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="arm does not build fp64") as raised:
        all_backends()["arm"].convert(source, "fp64", calibration, tmp_path, settings)
    assert not isinstance(raised.value, UsageError)


def test_a_precision_failing_with_any_error_is_its_variants_failure_and_the_others_build(
    mlp: Path, settings: FarmSettings, tmp_path: Path
) -> None:
    sha = sha256_of(mlp)
    key = open_store(settings).put_model(mlp, sha)
    request = ConversionRequest(
        job_id="j1",
        hardware="cpu",
        model_key=key,
        model_sha256=sha,
        model_format=ModelFormat.ONNX,
        inputs=[],
        outputs=[],
        options=ConvertOptions(),
    )
    builder = VariantBuilder(request, settings, tmp_path / "work")
    (tmp_path / "work").mkdir()
    builder.prepare()
    native, fp32, int8 = plan_variants(request, settings)
    impossible = replace(fp32, precision="fp16")  # its backend raises ValueError, not ConversionError

    outcomes = [build_or_failure(builder.build, planned) for planned in (native, impossible, fp32, int8)]

    assert outcomes[1] == "cpu fp16: ValueError: cpu does not build fp16"  # its type and first line
    built = [outcome for outcome in outcomes if isinstance(outcome, VariantOutcome)]
    assert [(o.planned.backend, o.planned.precision) for o in built] == [
        ("native", "fp32"),
        ("cpu", "fp32"),
        ("cpu", "int8"),
    ]
    assert all(o.verification.passed for o in built)
