"""What loading a TensorFlow model can fail on, and whose fault each is: a file that does not
parse is a corrupt model (the user's, failed at once); running out of memory is the worker's
host (an infrastructure error, retried), never "a corrupt model"."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from farm.core.errors import CorruptModelError, HostResourceError
from farm.core.modelfile import ModelFormat
from workers.sources import load_source

HUGE = 1 << 20  # a 2**20 x 2**20 float32 kernel: 4 TiB, which no host allocates


def _keras_file(target: Path, units: int, features: int) -> Path:
    """A .keras file of one Dense layer, its config written as a larger model's would be."""
    import keras

    inputs = keras.Input((8,), name="x")
    small = keras.Model(inputs, keras.layers.Dense(4, name="dense")(inputs))
    saved = target.with_name("small.keras")
    small.save(saved)
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(target, "w") as out:
        for item in source.namelist():
            data = source.read(item)
            if item == "config.json":
                config = json.dumps(json.loads(data)).replace('"units": 4', f'"units": {units}')
                data = config.replace("[null, 8]", f"[null, {features}]").encode()
            out.writestr(item, data)
    return target


def test_running_out_of_memory_loading_a_model_is_the_hosts_fault(tmp_path: Path) -> None:
    model = _keras_file(tmp_path / "huge.keras", units=HUGE, features=HUGE)
    with pytest.raises(HostResourceError, match="ran out of memory") as raised:
        load_source(model, ModelFormat.KERAS, [], [], tmp_path)
    assert raised.value.retryable
    assert type(raised.value.__cause__).__name__ == "ResourceExhaustedError"  # TensorFlow's OOM


def test_a_keras_file_that_does_not_parse_is_a_corrupt_model(tmp_path: Path) -> None:
    model = tmp_path / "broken.keras"
    model.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptModelError, match=r"broken\.keras: TensorFlow could not load it"):
        load_source(model, ModelFormat.KERAS, [], [], tmp_path)


def test_a_keras_config_that_contradicts_itself_is_a_corrupt_model(tmp_path: Path) -> None:
    model = _keras_file(tmp_path / "mismatched.keras", units=5, features=8)  # weights hold 4 units
    with pytest.raises(CorruptModelError, match=r"mismatched\.keras"):
        load_source(model, ModelFormat.KERAS, [], [], tmp_path)


def test_a_truncated_frozen_graph_is_a_corrupt_model(tmp_path: Path, sample_models: dict[str, Path]) -> None:
    graph = sample_models["frozen_graph"].read_bytes()
    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes(graph[: len(graph) // 2])
    with pytest.raises(CorruptModelError, match=r"truncated\.pb"):
        load_source(truncated, ModelFormat.FROZEN_GRAPH, [], [], tmp_path)
