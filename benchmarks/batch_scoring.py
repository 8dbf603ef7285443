"""Batch-scoring benchmark: the farm against the raw limit and Ray Data, same data, same cores, one run.

    make bench-scoring     # installs skl2onnx and Ray Data (the peers extra), then runs this
    .venv/bin/python benchmarks/batch_scoring.py [--workloads tabular,images] [--skip-ray] [--out F]

Workloads:
- tabular: 2,000,000 rows of 20 float features in Parquet (row groups of 65,536), scored by a
  scikit-learn MLP (two hidden layers of 1,024) exported with skl2onnx; batches of 1,024 rows.
- images: 20,000 images of 96x96x3 (uint8, one fixed-size-list column; row groups of 1,024)
  scored by Keras MobileNetV2 (``weights=None``, that input size); batches of 64 images.

The farm converts the model first (not timed); every contender then runs the farm's cpu fp32
ONNX variant, the same file, with ONNX Runtime's CPU provider, reads the Parquet and writes the
id and every model output to Parquet:
- raw: one fresh process, a plain loop; the limit anything built on ONNX Runtime can reach here.
- farm: a private `farm up` farm with one cpu worker process; `farm submit infer --wait` timed
  from submit to done (the CLI's own start included).
- Ray Data: read_parquet -> map_batches with a pool of one actor -> write_parquet. The actor asks
  for 0.5 CPU: an actor holding every CPU starves Ray's read tasks on a 2-core machine (ray issue
  44687); ONNX Runtime inside it still uses every core, as in the other two.

Printed per workload: rows/s of each, the farm's efficiency (farm / raw), farm / Ray Data, and
the peak RSS of the farm's worker process scoring a tenth of the rows and all of them (each in a
worker process started after the conversion, so it holds only what scoring needs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from privatefarm import PrivateFarm  # noqa: E402

FEATURES = 20
IMAGE_SHAPE = (96, 96, 3)


@dataclass(frozen=True)
class Workload:
    name: str
    rows: int
    batch: int
    columns: str  # the feature columns, as `farm submit infer --columns` takes them
    write_model: Callable[[Path], Path]
    write_data: Callable[[Path, int], Path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="tabular,images")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every workload's rows.")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="Also write the results as JSON.")
    args = parser.parse_args()
    results = {}
    for name in args.workloads.split(","):
        workload = WORKLOADS[name]
        workload = Workload(**{**workload.__dict__, "rows": int(workload.rows * args.scale)})
        with tempfile.TemporaryDirectory(prefix=f"farm-scoring-{name}-") as scratch:
            results[name] = run_workload(workload, Path(scratch), args.skip_ray)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def run_workload(workload: Workload, folder: Path, skip_ray: bool) -> dict[str, Any]:
    print(f"== {workload.name}: {workload.rows:,} rows, batches of {workload.batch}, {os.cpu_count()} cores")
    model = workload.write_model(folder)
    data = workload.write_data(folder / "data.parquet", workload.rows)
    small = workload.write_data(folder / "small.parquet", workload.rows // 10)
    result: dict[str, Any] = {"rows": workload.rows, "batch": workload.batch, "cores": os.cpu_count()}
    result["farm_s"], result["rss_10x_mib"], variant = farm_run(workload, model, data, folder / "farm-10x")
    result["raw_s"] = raw_run(variant, data, folder / "raw.parquet", workload)
    if not skip_ray:
        result["ray_s"] = ray_run(variant, data, folder / "ray-out", workload)
    _, result["rss_1x_mib"], _ = farm_run(workload, model, small, folder / "farm-1x")
    for contender in ("raw", "farm", "ray"):
        if f"{contender}_s" in result:
            seconds = result[f"{contender}_s"]
            print(f"{contender:8} {workload.rows / seconds:>12,.0f} rows/s  ({seconds:.1f} s)")
    print(f"farm efficiency (farm / raw): {result['raw_s'] / result['farm_s']:.3f}")
    if "ray_s" in result:
        print(f"farm / Ray Data: {result['ray_s'] / result['farm_s']:.2f}x")
    growth = result["rss_10x_mib"] / result["rss_1x_mib"] - 1
    print(
        f"worker peak RSS: {result['rss_1x_mib']:.0f} MiB at {workload.rows // 10:,} rows, "
        f"{result['rss_10x_mib']:.0f} MiB at {workload.rows:,} rows ({growth:+.1%})"
    )
    return result


# --- the workloads ---------------------------------------------------------------------------------


def export_mlp(folder: Path) -> Path:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    features = rng.normal(size=(4_000, FEATURES)).astype(np.float32)
    labels = (features[:, :3].sum(axis=1) > 0).astype(int) + (features[:, 3] > 1).astype(int)
    classifier = MLPClassifier(hidden_layer_sizes=(1024, 1024), max_iter=20, random_state=0)
    classifier.fit(features, labels)
    onnx_model = to_onnx(classifier, features[:1], options={id(classifier): {"zipmap": False}})
    target = folder / "mlp.onnx"
    target.write_bytes(onnx_model.SerializeToString())
    return target


def write_tabular(target: Path, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(1)

    def chunk(start: int, count: int) -> pa.Table:
        columns = {f"f{i}": rng.normal(size=count).astype(np.float32) for i in range(FEATURES)}
        return pa.table({"id": np.arange(start, start + count), **columns})

    return _write_parquet(target, rows, 262_144, 65_536, chunk)


def build_mobilenet(folder: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    target = folder / "mobilenetv2.keras"
    keras.applications.MobileNetV2(weights=None, input_shape=IMAGE_SHAPE).save(target)
    return target


def write_images(target: Path, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(2)
    width = int(np.prod(IMAGE_SHAPE))

    def chunk(start: int, count: int) -> pa.Table:
        pixels = rng.integers(0, 256, size=count * width, dtype=np.uint8)
        images = pa.FixedSizeListArray.from_arrays(pa.array(pixels), width)
        return pa.table({"id": np.arange(start, start + count), "image": images})

    return _write_parquet(target, rows, 2_048, 1_024, chunk)


def _write_parquet(
    target: Path, rows: int, step: int, row_group: int, chunk: Callable[[int, int], Any]
) -> Path:
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, step):
        table = chunk(start, min(step, rows - start))
        writer = writer or pq.ParquetWriter(target, table.schema)
        writer.write_table(table, row_group_size=row_group)
    assert writer is not None
    writer.close()
    return target


WORKLOADS = {
    "tabular": Workload(
        "tabular", 2_000_000, 1_024, ",".join(f"f{i}" for i in range(FEATURES)), export_mlp, write_tabular
    ),
    "images": Workload("images", 20_000, 64, "image", build_mobilenet, write_images),
}


def features_of(table: Any, columns: str) -> Any:
    """The model input, as the farm stacks it: columns side by side, reshaped, as float32."""
    import numpy as np

    names = columns.split(",")
    if names == ["image"]:
        flat = table.column("image").combine_chunks().flatten().to_numpy()
        return flat.reshape((table.num_rows, *IMAGE_SHAPE)).astype(np.float32)
    return np.stack([table.column(name).to_numpy() for name in names], axis=1).astype(np.float32)


def score_table(session: Any, table: Any, columns: str) -> Any:
    """The output every contender writes: the id and each model output."""
    import pyarrow as pa

    outputs = session.run(None, {session.get_inputs()[0].name: features_of(table, columns)})
    scored = {"id": table.column("id")}
    for meta, values in zip(session.get_outputs(), outputs, strict=True):
        flat = values.reshape(len(values), -1)
        scored[meta.name] = (
            pa.array(flat[:, 0])
            if flat.shape[1] == 1
            else pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
        )
    return pa.table(scored)


# --- the contenders --------------------------------------------------------------------------------


def farm_run(workload: Workload, model: Path, data: Path, home: Path) -> tuple[float, float, Path]:
    """Seconds from submit to done, the worker's peak RSS in MiB, and the serving ONNX variant."""
    with PrivateFarm(home, "cpu", {"FARM_BENCH_MAX_BATCH": "8"}) as farm:
        converted = farm.cli("submit", "convert", str(model), "--hw", "cpu", "--precision", "fp32", "--wait")
        job_id = converted.stdout.split()[0]
        variant = next(v for v in farm.view(job_id).variants if v.backend == "cpu")
        # A fresh worker process, so its peak RSS is scoring's alone, not the conversion's (which
        # may have loaded TensorFlow); it is given time to start before the clock starts.
        farm.stop_worker()
        farm.start_worker()
        time.sleep(15)
        started = time.perf_counter()
        farm.cli(
            "submit", "infer", job_id, "--data", str(data), "--out", str(home / "out"), "--hw", "cpu",
            "--columns", workload.columns, "--keep", "id", "--batch-size", str(workload.batch), "--wait",
        )  # fmt: skip
        seconds = time.perf_counter() - started
        assert farm.worker is not None
        return seconds, _peak_rss_mib(farm.worker.pid), home / "artifacts" / variant.artifact_key


def _peak_rss_mib(pid: int) -> float:
    """The largest peak RSS among a worker's processes (Celery's main one and its pool)."""
    import psutil

    peaks = []
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        status = Path(f"/proc/{process.pid}/status").read_text()
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")]
    return max(peaks)


def raw_run(model: Path, data: Path, target: Path, workload: Workload) -> float:
    """The raw loop in a fresh process of its own, like the farm's worker and Ray's: nothing this
    process loaded or trained (scikit-learn, its BLAS threads) shares its CPU time."""
    script = (
        "import sys; from pathlib import Path; from batch_scoring import WORKLOADS, raw_loop; "
        f"print(raw_loop(Path({str(model)!r}), Path({str(data)!r}), Path({str(target)!r}), "
        f"WORKLOADS[{workload.name!r}]))"
    )
    return float(_python(script).splitlines()[-1])


def _python(script: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=3600, env=environment
    )
    if result.returncode != 0:
        raise SystemExit(f"{script[:60]}... failed: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip()


def raw_loop(model: Path, data: Path, target: Path, workload: Workload) -> float:
    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    writer, row, pending = None, 0, []
    for batch in pq.ParquetFile(data).iter_batches(batch_size=workload.batch):
        scored = score_table(session, pa.Table.from_batches([batch]), workload.columns)
        pending.append(scored.add_column(0, "row", pa.array(range(row, row + batch.num_rows))))
        row += batch.num_rows
        if sum(t.num_rows for t in pending) >= 65_536:  # row groups as large as the farm writes
            writer = writer or pq.ParquetWriter(target, pending[0].schema)
            writer.write_table(pa.concat_tables(pending))
            pending = []
    if pending:
        writer = writer or pq.ParquetWriter(target, pending[0].schema)
        writer.write_table(pa.concat_tables(pending))
    assert writer is not None
    writer.close()
    return time.perf_counter() - started


RAY_SCRIPT = """
import sys, time
import ray
from batch_scoring import score_table

class Scorer:
    def __init__(self):
        import onnxruntime as ort
        self.session = ort.InferenceSession({model!r}, providers=["CPUExecutionProvider"])

    def __call__(self, table):
        return score_table(self.session, table, {columns!r})

environment = {{"env_vars": {{"PYTHONPATH": {benchmarks!r}}}}}
ray.init(num_cpus={cores}, include_dashboard=False, log_to_driver=False, runtime_env=environment)
started = time.perf_counter()
scored = ray.data.read_parquet({data!r}).map_batches(
    Scorer, batch_size={batch}, batch_format="pyarrow", concurrency=1, num_cpus=0.5
)
scored.write_parquet({out!r})
print(time.perf_counter() - started)
"""


def ray_run(model: Path, data: Path, out: Path, workload: Workload) -> float:
    """Ray Data in a process of its own (its workers and object store go when it ends)."""
    benchmarks = str(Path(__file__).parent)
    script = RAY_SCRIPT.format(
        benchmarks=benchmarks,
        model=str(model),
        data=str(data),
        out=str(out),
        cores=os.cpu_count(),
        batch=workload.batch,
        columns=workload.columns,
    )
    return float(_python(script).splitlines()[-1])


if __name__ == "__main__":
    main()
