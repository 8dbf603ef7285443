"""Sample layout (one sample per row) to a model's own layout and back."""

from __future__ import annotations

import numpy as np
import pytest

from farm.core.errors import DataError
from farm.core.modelfile import TensorSpec
from workers.layout import in_sample_layout, to_model_layout

STATE = TensorSpec("state", (2, None, 8), "float32", batch_axis=1)
RATE = TensorSpec("sr", (), "int64", batch_axis=None)
X = TensorSpec("x", (None, 4), "float32")


def test_a_state_gets_its_batch_axis_and_a_scalar_one_value() -> None:
    feeds = {
        "x": np.zeros((5, 4), np.float32),
        "state": np.arange(5 * 2 * 8, dtype=np.float32).reshape(5, 2, 8),
        "sr": np.full(5, 16000, np.int64),
    }
    fed = to_model_layout(feeds, [X, STATE, RATE])
    assert fed["x"].shape == (5, 4) and fed["state"].shape == (2, 5, 8) and fed["sr"].shape == ()
    np.testing.assert_array_equal(fed["state"][:, 3], feeds["state"][3])
    assert fed["sr"] == 16000


def test_samples_that_disagree_on_a_scalar_are_refused() -> None:
    with pytest.raises(DataError, match="one value for a whole batch"):
        to_model_layout({"sr": np.array([8000, 16000])}, [RATE])


def test_outputs_come_back_one_sample_per_row_and_a_plain_model_is_left_alone() -> None:
    def model(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        assert feeds["state"].shape == (2, 3, 8)
        return [feeds["state"] * 2]

    run = in_sample_layout(model, [STATE], ["next_state"], {"next_state": 1})
    (next_state,) = run({"state": np.ones((3, 2, 8), np.float32)})
    assert next_state.shape == (3, 2, 8)
    assert in_sample_layout(model, [X], ["y"], {}) is model
