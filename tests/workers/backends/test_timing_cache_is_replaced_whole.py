"""A TensorRT timing cache is shared by the pool processes of a host (one per GPU, TensorRT and
CUDA version) and read while another process writes it: it is replaced whole, so a reader sees the
old cache or the new one, never a truncated or half-written file. Real files, a real concurrent
reader in another process; no GPU needed (the write is a plain function)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from workers.backends.gpu_tensorrt import read_timing_cache, write_timing_cache

SIZE = 1 << 20
VERSIONS = 200

# Version i of the cache is SIZE + i * 4096 bytes, every one of them i: a reader can tell a whole
# version from a torn one by its first byte alone.
READER = """
import json, sys
from pathlib import Path

path, stop = Path(sys.argv[1]), Path(sys.argv[2])
reads = torn = 0
print("ready", flush=True)
while not stop.exists():
    data = path.read_bytes()
    reads += 1
    whole = bool(data) and len(data) == %(size)d + data[0] * 4096 and data.count(data[0]) == len(data)
    torn += not whole
print(json.dumps({"reads": reads, "torn": torn}), flush=True)
"""


def version(i: int) -> bytes:
    return bytes([i]) * (SIZE + i * 4096)


def test_a_reader_never_sees_a_torn_timing_cache(tmp_path: Path) -> None:
    cache, stop = tmp_path / "tensorrt" / "gpu.timing-cache", tmp_path / "stop"
    write_timing_cache(cache, version(0))  # the folder is made on first write
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(READER % {"size": SIZE}), str(cache), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    for i in range(1, VERSIONS):
        write_timing_cache(cache, version(i))
    stop.touch()
    found = json.loads(reader.stdout.readline())
    reader.wait(30)
    assert found["reads"] > 0 and found["torn"] == 0, found
    assert read_timing_cache(cache) == version(VERSIONS - 1)
    assert [p.name for p in cache.parent.iterdir()] == [cache.name], "temporary files left behind"
    assert read_timing_cache(tmp_path / "none-yet.timing-cache") == b""
