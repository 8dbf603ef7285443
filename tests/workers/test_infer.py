from __future__ import annotations

import numpy as np
import pyarrow as pa

from workers.infer import ClassRate, output_table, wait_for_faster
from workers.shardreader import Batch


def test_a_slow_class_steps_back_only_when_the_others_would_clear_the_rest_sooner() -> None:
    rates = {"cpu": ClassRate(10_000, 2), "arm": ClassRate(1_000, 1)}
    # arm would need 5 s for a 5,000-row shard; cpu clears 6,000 pending rows in 0.3 s.
    assert wait_for_faster(rates, "arm", 6_000, 5_000) == 5.0
    assert wait_for_faster(rates, "cpu", 6_000, 5_000) is None  # the fast class never waits
    assert wait_for_faster(rates, "arm", 500_000, 5_000) is None  # plenty left for both
    idle = {"cpu": ClassRate(10_000, 0), "arm": ClassRate(1_000, 1)}
    assert wait_for_faster(idle, "arm", 6_000, 5_000) is None  # cpu is not at work: arm goes on
    assert wait_for_faster({"arm": ClassRate(0, 1)}, "arm", 6_000, 5_000) is None  # nothing measured yet


def test_output_rows_carry_their_index_kept_columns_and_each_output() -> None:
    batch = Batch(40, {"x": np.zeros((3, 2), np.float32)}, pa.table({"id": [7, 8, 9]}))
    scores = np.arange(6, dtype=np.float32).reshape(3, 2)
    table = output_table(batch, [scores, np.array([[1.0], [2.0], [3.0]])], ["probabilities", "value"])
    assert table.column_names == ["row", "id", "probabilities", "value"]
    assert table.column("row").to_pylist() == [40, 41, 42]
    assert table.column("probabilities").type == pa.list_(pa.float32(), 2)
    assert table.column("probabilities").to_pylist()[2] == [4.0, 5.0]
    assert table.column("value").to_pylist() == [1.0, 2.0, 3.0]  # one value per row: a plain column
