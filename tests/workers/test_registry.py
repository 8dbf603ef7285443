from __future__ import annotations

import pytest

from farm.core.errors import UnsupportedModelError, UsageError
from farm.core.modelfile import ModelFormat
from farm.core.settings import FarmSettings
from farm.core.targets import (
    ALL_FORMATS,
    NATIVE,
    PRECISIONS,
    TARGETS,
    Target,
    class_precisions,
    hardware_classes,
    missing_modules,
    parse_hardware_list,
    parse_precisions,
    refuse_format,
    targets_for,
    toolchain_problem,
)
from workers.backends import all_backends, backends_for, class_problems, native_backend


def test_every_hardware_target_and_the_native_baseline_are_registered() -> None:
    assert hardware_classes() == ["arm", "cpu", "fpga", "gpu"]
    assert native_backend().name == NATIVE and native_backend().hardware is None
    assert set(all_backends()) == set(TARGETS)  # one backend module per entry of farm/core/targets.py
    for name, backend in all_backends().items():
        target = TARGETS[name]
        assert backend.target is target and backend.name == name and target.summary and target.extra
        assert list(target.precisions) == [p for p in PRECISIONS if p in target.precisions] != []
        assert target.model_formats and set(target.model_formats) <= {fmt.value for fmt in ModelFormat}
        if target.hardware:
            assert target.hardware in name and target.requires


def test_unknown_hardware_names_the_known_ones_and_native_is_not_a_queue() -> None:
    with pytest.raises(UsageError, match=r"unknown hardware class 'tpu' \(known: arm, cpu, fpga, gpu\)"):
        backends_for("tpu")
    with pytest.raises(UsageError, match="unknown hardware class 'native'"):
        parse_hardware_list("cpu,native")


def test_hardware_lists_are_normalised_and_checked() -> None:
    assert parse_hardware_list(" CPU, cpu ,arm") == ["cpu", "arm"]
    with pytest.raises(UsageError, match="no hardware class"):
        parse_hardware_list(" , ")


def test_precisions_are_ordered_checked_and_must_fit_each_hardware_class() -> None:
    assert parse_precisions("", ["cpu"]) == []  # every one the backend builds
    assert parse_precisions("INT8, fp32", ["cpu", "arm"]) == ["fp32", "int8"]
    assert parse_precisions("fp16,int8", ["cpu", "arm"]) == ["fp16", "int8"]  # cpu builds the int8
    with pytest.raises(UsageError, match="unknown precision bf16"):
        parse_precisions("bf16", ["cpu"])
    with pytest.raises(UsageError, match="fpga builds int8; none of fp32, fp16 asked for"):
        parse_precisions("fp32,fp16", ["fpga"])


def test_a_missing_toolchain_names_the_extra_to_install() -> None:
    requires = ("json", "farm_no_such_toolchain")
    needy = Target("x", "x", "needs a module that does not exist", ("fp32",), ("onnx",), requires, "needy")
    assert missing_modules(needy.requires) == ["farm_no_such_toolchain"]
    assert toolchain_problem(needy) == ["farm_no_such_toolchain not installed: pip install 'farm[needy]'"]
    # Whatever this host has installed: a class is servable exactly when one of its runtimes has
    # every module it needs, and otherwise each missing module is named with its extra.
    for hardware in ("cpu", "arm", "fpga"):
        targets = targets_for(hardware)
        servable = any(not missing_modules(target.requires) for target in targets)
        problems = class_problems(hardware)
        assert (problems == []) == servable, (hardware, problems)
        for target in targets if not servable else []:
            assert any(f"pip install 'farm[{target.extra}]'" in problem for problem in problems)


def test_a_class_refuses_a_model_format_none_of_its_runtimes_converts_from() -> None:
    refuse_format("cpu", "onnx")
    refuse_format("arm", "keras")
    refuse_format("gpu", "onnx")
    refuse_format("arm", "onnx")  # ONNX Runtime, beside TFLite
    refuse_format("arm", "xgboost")
    with pytest.raises(UnsupportedModelError, match="fpga cannot run a skops model's operators"):
        refuse_format("fpga", "skops")
    with pytest.raises(UnsupportedModelError, match="fpga cannot run a lightgbm"):
        refuse_format("fpga", "lightgbm")


def test_arm_builds_with_tflite_and_onnx_runtime_and_every_format_reaches_it() -> None:
    assert [backend.name for backend in backends_for("arm")] == ["arm", "arm-ort"]
    assert class_precisions("arm") == ("fp32", "fp16", "dynamic", "int8")
    assert all(fmt in TARGETS["arm-ort"].model_formats for fmt in ALL_FORMATS)


def test_the_gpu_class_has_two_runtimes_and_offers_what_either_builds() -> None:
    assert [backend.name for backend in backends_for("gpu")] == ["gpu-ort", "gpu-tensorrt"]
    assert class_precisions("gpu") == ("fp32", "fp16", "int8")
    assert parse_precisions("int8", ["gpu"]) == ["int8"]  # TensorRT builds it; the CUDA provider skips it
    # Neither runtime needs TensorFlow: only TensorFlow models do, and they say so when converted.
    assert all("tensorflow" not in backend.target.requires for backend in backends_for("gpu"))


def test_the_toolchain_string_names_installed_versions_without_importing_them() -> None:
    toolchain = all_backends()["cpu"].toolchain(FarmSettings())
    assert "onnxruntime " in toolchain and "tf2onnx " in toolchain
    assert "amd-quark " in all_backends()["fpga"].toolchain(FarmSettings())
