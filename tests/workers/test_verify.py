from __future__ import annotations

import numpy as np
import pytest

from farm.errors import ModelError
from workers.sources import SourceModel, TensorSpec
from workers.verify import concrete_shape, sample_inputs, verify

SPEC = TensorSpec("x:0", (None, 4), "float32")


def _source(function) -> SourceModel:  # type: ignore[no-untyped-def]
    return SourceModel([SPEC], ["y:0"], lambda feeds: [function(feeds["x:0"])], lambda _: None, "numpy")


def test_identical_outputs_pass() -> None:
    result = verify(_source(np.tanh), lambda feeds: [np.tanh(feeds["x:0"])], batch=3, atol=1e-6, rtol=1e-6)
    assert result.passed and result.max_abs_error == 0.0


def test_an_offset_beyond_tolerance_fails_with_its_numbers() -> None:
    result = verify(
        _source(np.tanh), lambda feeds: [np.tanh(feeds["x:0"]) + 0.01], batch=3, atol=1e-3, rtol=0
    )
    assert not result.passed
    assert result.max_abs_error == pytest.approx(0.01, rel=1e-3)
    assert "max abs error 0.01" in result.summary()


def test_nan_and_inf_in_the_variant_are_counted() -> None:
    def broken(feeds):  # type: ignore[no-untyped-def]
        out = np.tanh(feeds["x:0"]).copy()
        out[0, 0], out[0, 1], out[1, 0] = np.nan, np.inf, -np.inf
        return [out]

    check = verify(_source(np.tanh), broken, batch=2, atol=1, rtol=1).outputs[0]
    assert (check.nan_count, check.inf_count, check.within_tolerance) == (1, 2, False)


def test_shape_mismatch_fails() -> None:
    assert not verify(_source(np.tanh), lambda feeds: [feeds["x:0"][:1]], batch=2, atol=1, rtol=1).passed


def test_inputs_are_deterministic_and_need_known_dimensions() -> None:
    first, second = sample_inputs([SPEC], 5), sample_inputs([SPEC], 5)
    assert first["x:0"].shape == (5, 4) and np.array_equal(first["x:0"], second["x:0"])
    assert sample_inputs([TensorSpec("ids", (None, 3), "int64")], 2)["ids"].dtype == np.int64
    with pytest.raises(ModelError, match="--inputs x:1"):
        concrete_shape(TensorSpec("x", (None, None), "float32"), 1)
