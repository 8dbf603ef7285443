from __future__ import annotations

import pytest

from farm.errors import UsageError
from workers.backends import all_backends, get_backend, parse_hardware_list
from workers.backends.base import missing_modules, toolchain_problem


def test_every_backend_module_registers_under_its_hardware_class() -> None:
    backends = all_backends()
    assert "cpu" in backends
    for hardware, backend in backends.items():
        assert backend.hardware == hardware
        assert backend.requires and backend.extra and backend.summary


def test_unknown_hardware_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown hardware class 'tpu' \(known: cpu"):
        get_backend("tpu")


def test_hardware_lists_are_normalised_and_checked() -> None:
    assert parse_hardware_list(" CPU, cpu ,") == ["cpu"]
    with pytest.raises(UsageError, match="no hardware class"):
        parse_hardware_list(" , ")


def test_a_missing_toolchain_names_the_extra_to_install() -> None:
    class Needy:
        hardware, summary, extra = "x", "needs a module that does not exist", "needy"
        requires = ("json", "farm_no_such_toolchain")

    assert missing_modules(Needy.requires) == ["farm_no_such_toolchain"]
    assert toolchain_problem(Needy()) == ["farm_no_such_toolchain not installed: pip install 'farm[needy]'"]  # type: ignore[arg-type]
    assert get_backend("cpu").host_problems() == []
