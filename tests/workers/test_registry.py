from __future__ import annotations

import pytest

from farm.errors import UsageError
from workers.backends import (
    NATIVE,
    all_backends,
    get_backend,
    hardware_classes,
    native_backend,
    parse_hardware_list,
    parse_precisions,
)
from workers.backends.base import PRECISIONS, missing_modules, toolchain_problem


def test_every_hardware_target_and_the_native_baseline_are_registered() -> None:
    assert hardware_classes() == ["arm", "cpu", "fpga", "gpu"]
    assert native_backend().name == NATIVE and native_backend().hardware is None
    for name, backend in all_backends().items():
        assert backend.name == name and backend.summary and backend.extra
        assert backend.precisions and set(backend.precisions) <= set(PRECISIONS)
        assert list(backend.precisions) == [p for p in PRECISIONS if p in backend.precisions]
        if backend.hardware:
            assert backend.hardware == name and backend.requires


def test_unknown_hardware_names_the_known_ones_and_native_is_not_a_queue() -> None:
    with pytest.raises(UsageError, match=r"unknown hardware class 'tpu' \(known: arm, cpu, fpga, gpu\)"):
        get_backend("tpu")
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
    class Needy:
        name = hardware = "x"
        summary, extra = "needs a module that does not exist", "needy"
        requires = ("json", "farm_no_such_toolchain")

    assert missing_modules(Needy.requires) == ["farm_no_such_toolchain"]
    assert toolchain_problem(Needy()) == ["farm_no_such_toolchain not installed: pip install 'farm[needy]'"]  # type: ignore[arg-type]
    for installed in ("cpu", "arm", "fpga"):
        assert get_backend(installed).host_problems() == []


def test_the_toolchain_string_names_installed_versions_without_importing_them() -> None:
    toolchain = get_backend("cpu").toolchain()
    assert "onnxruntime " in toolchain and "tf2onnx " in toolchain
    assert "amd-quark " in get_backend("fpga").toolchain()
