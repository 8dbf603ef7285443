from __future__ import annotations

import pytest

from farm.client.infer import parse_named_inputs, parse_precision_pins
from farm.core.errors import UsageError


def test_precision_pins_every_class_or_each_one_named() -> None:
    assert parse_precision_pins("", ["cpu", "fpga"]) == {"cpu": None, "fpga": None}
    assert parse_precision_pins("int8", ["cpu", "fpga"]) == {"cpu": "int8", "fpga": "int8"}
    assert parse_precision_pins("cpu=fp32", ["cpu", "fpga"]) == {"cpu": "fp32", "fpga": None}
    assert parse_precision_pins("cpu=fp32, fpga=int8", ["cpu", "fpga"]) == {"cpu": "fp32", "fpga": "int8"}
    with pytest.raises(UsageError, match="pins one precision"):
        parse_precision_pins("fp32,int8", ["cpu"])
    with pytest.raises(UsageError, match="'gpu' is not one of --hw cpu"):
        parse_precision_pins("gpu=fp16", ["cpu"])
    with pytest.raises(UsageError, match="fpga builds int8"):
        parse_precision_pins("fpga=fp32", ["fpga"])


def test_named_inputs_take_their_columns_in_order() -> None:
    assert parse_named_inputs(["image=r,g,b", "meta = age"]) == {"image": ["r", "g", "b"], "meta": ["age"]}
    with pytest.raises(UsageError, match="expected NAME=col1,col2"):
        parse_named_inputs(["image"])
