"""A TensorRT runner allocates its device buffers once per tensor and size and reuses them on every
call (so the benchmark times the engine, not cudaMalloc/cudaFree), and frees them and destroys its
CUDA stream when closed or collected, once.

DeviceBuffers is tested with plain Python callables that count calls. EngineRunner itself runs in a
subprocess on the faked hardware boundary of tests/workers/backends/fake_gpu.py (no GPU, TensorRT
or cuda-python here): ``tensorrt`` and ``cuda.bindings.runtime`` modules that record every call;
the runner's code is the real one.
"""

from __future__ import annotations

from pathlib import Path

from tests.workers.backends import fake_gpu
from workers.backends.gpu_tensorrt import DeviceBuffers


class CountingDevice:
    """Hands out numbered "pointers" and remembers which are live."""

    def __init__(self) -> None:
        self.allocations: list[int] = []
        self.freed: list[int] = []
        self.live: dict[int, int] = {}

    def allocate(self, nbytes: int) -> int:
        pointer = len(self.allocations) + 1
        self.allocations.append(nbytes)
        self.live[pointer] = nbytes
        return pointer

    def free(self, pointer: int) -> None:
        assert pointer in self.live, f"freed {pointer} twice, or never allocated"
        self.freed.append(pointer)
        del self.live[pointer]


def test_buffers_are_allocated_once_per_name_and_size_and_reused() -> None:
    device = CountingDevice()
    buffers = DeviceBuffers(device.allocate, device.free)
    first = {name: buffers.get(name, 64) for name in ("x", "y")}
    for _ in range(100):
        assert {name: buffers.get(name, 64) for name in ("x", "y")} == first
    assert device.allocations == [64, 64] and device.freed == []

    assert buffers.get("x", 32) == first["x"]  # a smaller batch fits the buffer it has
    bigger = buffers.get("x", 256)  # a larger one replaces it: the old buffer is freed first
    assert bigger != first["x"] and device.freed == [first["x"]] and device.allocations == [64, 64, 256]
    assert buffers.get("x", 256) == bigger and buffers.get("x", 64) == bigger
    assert buffers.get("empty", 0) and device.allocations[-1] == 1  # an empty tensor still gets a pointer
    assert buffers.held_bytes == 64 + 256 + 1

    buffers.release()
    assert device.live == {} and buffers.held_bytes == 0
    buffers.release()  # twice: nothing is freed twice
    assert len(device.freed) == 4


RUNNER = """
import gc, json
from pathlib import Path

import numpy as np

from fake_gpu_calls import CALLS
from workers.backends.gpu_tensorrt import EngineRunner

engine = Path(%(folder)r) / "model.engine"
layout = {"inputs": {"x": ["float32", [-1, 4]]}, "outputs": {"y": ["float32", [-1, 2]]}}
engine.write_text(json.dumps(layout))

def count(name, calls):
    return sum(call.startswith(f"cudart.{name}(") for call in calls)

runner = EngineRunner(engine, ["y"])
for batch in [1] * 50 + [4] * 50 + [2] * 50:  # as the benchmark's sweep calls it
    out = runner({"x": np.ones((batch, 4), np.float32)})
    assert out[0].shape == (batch, 2)
served = list(CALLS)
close = getattr(runner, "close", lambda: None)  # a runner without one releases nothing
close()
closed = CALLS[len(served):]
close()
twice = CALLS[len(served) + len(closed):]

dropped = EngineRunner(engine, ["y"])
dropped({"x": np.ones((1, 4), np.float32)})
before_drop = len(CALLS)
del dropped
gc.collect()
collected = CALLS[before_drop:]
print(json.dumps({
    "served": {name: count(name, served) for name in ("cudaMalloc", "cudaFree", "cudaStreamCreate")},
    "executions": sum(call.startswith("tensorrt.Context.execute_async_v3") for call in served),
    "closed": closed, "twice": twice, "collected": collected,
}))
"""


def test_the_engine_runner_reuses_its_buffers_and_releases_them_with_its_stream(tmp_path: Path) -> None:
    found = fake_gpu.run(RUNNER % {"folder": str(tmp_path)}, tmp_path)
    assert found["executions"] == 150
    # x and y at batch 1, again when batch 4 needs more; batch 2 fits what batch 4 allocated.
    assert found["served"] == {"cudaMalloc": 4, "cudaFree": 2, "cudaStreamCreate": 1}, found["served"]

    stream = "cudart.cudaStreamDestroy(1514)"  # the fake's stream handle, 0x5EA
    closed = found["closed"]
    assert sum(call.startswith("cudart.cudaFree(") for call in closed) == 2, closed
    assert closed[0].startswith("cudart.cudaStreamSynchronize") and closed[-1] == stream, closed
    assert found["twice"] == [], "close() twice released twice"

    collected = found["collected"]  # a runner dropped without close() releases all the same
    assert sum(call.startswith("cudart.cudaFree(") for call in collected) == 2 and stream in collected
