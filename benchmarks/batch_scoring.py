"""Batch-scoring benchmark: the farm against the raw limit and Ray Data, same data, same cores, one run.

    .venv/bin/pip install -e '.[peers]'     # skl2onnx and Ray Data (make bench-scoring does both)
    .venv/bin/python benchmarks/batch_scoring.py [--rows 2000000] [--skip-ray] [--out results.json]

Data: ROWS rows of 20 float features in Parquet (row groups of 65,536), scored by a scikit-learn
MLP (two hidden layers of 1,024) exported with skl2onnx. Every contender reads the Parquet, runs the
same ONNX file with ONNX Runtime's CPU provider in batches of BATCH rows, and writes the row
index, the id and both model outputs to Parquet:

- raw: one process, a plain loop; the limit anything built on ONNX Runtime can reach here.
- farm: a private `farm up` farm with one cpu worker process; the model is converted first (not
  timed), then `farm submit infer --wait` is timed from submit to done.
- Ray Data: read_parquet -> map_batches with a pool of one actor -> write_parquet. The actor asks
  for 0.5 CPU: an actor holding every CPU starves Ray's read tasks on a 2-core machine (ray issue
  44687); ONNX Runtime inside it still uses every core, as in the other two.

It prints rows/s of each, the farm's efficiency (farm / raw) and farm / Ray, and the peak RSS of
the farm's worker process scoring ROWS/10 and ROWS rows (each in a fresh worker).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from privatefarm import PrivateFarm  # noqa: E402

BATCH = 1024
FEATURES = 20
ROW_GROUP = 65_536


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="Also write the results as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="farm-scoring-") as scratch:
        folder = Path(scratch)
        model = export_mlp(folder / "mlp.onnx")
        data = write_data(folder / "data.parquet", args.rows)
        small = write_data(folder / "small.parquet", args.rows // 10)
        results: dict[str, Any] = {"rows": args.rows, "batch": BATCH, "cores": os.cpu_count()}
        results["raw_s"] = raw_loop(model, data, folder / "raw.parquet")
        print(f"raw loop      {args.rows / results['raw_s']:>12,.0f} rows/s  ({results['raw_s']:.1f} s)")
        results["farm_s"], results["rss_10x_mib"] = farm_run(model, data, folder / "farm-10x")
        print(f"farm          {args.rows / results['farm_s']:>12,.0f} rows/s  ({results['farm_s']:.1f} s)")
        if not args.skip_ray:
            results["ray_s"] = ray_run(model, data, folder / "ray-out")
            print(f"Ray Data      {args.rows / results['ray_s']:>12,.0f} rows/s  ({results['ray_s']:.1f} s)")
        _, results["rss_1x_mib"] = farm_run(model, small, folder / "farm-1x")
    print(f"farm efficiency (farm / raw): {results['raw_s'] / results['farm_s']:.3f}")
    if "ray_s" in results:
        print(f"farm / Ray Data: {results['ray_s'] / results['farm_s']:.2f}x")
    print(
        f"worker peak RSS: {results['rss_1x_mib']:.0f} MiB at {args.rows // 10:,} rows, "
        f"{results['rss_10x_mib']:.0f} MiB at {args.rows:,} rows "
        f"({results['rss_10x_mib'] / results['rss_1x_mib'] - 1:+.1%})"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def export_mlp(target: Path) -> Path:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    features = rng.normal(size=(4_000, FEATURES)).astype(np.float32)
    labels = (features[:, :3].sum(axis=1) > 0).astype(int) + (features[:, 3] > 1).astype(int)
    classifier = MLPClassifier(hidden_layer_sizes=(1024, 1024), max_iter=20, random_state=0).fit(
        features, labels
    )
    onnx_model = to_onnx(classifier, features[:1], options={id(classifier): {"zipmap": False}})
    target.write_bytes(onnx_model.SerializeToString())
    return target


def write_data(target: Path, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    writer = None
    for start in range(0, rows, 262_144):
        count = min(262_144, rows - start)
        columns = {f"f{i}": rng.normal(size=count).astype(np.float32) for i in range(FEATURES)}
        table = pa.table({"id": np.arange(start, start + count), **columns})
        writer = writer or pq.ParquetWriter(target, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
    assert writer is not None
    writer.close()
    return target


def _score_table(session: Any, table: Any) -> Any:
    """The output every contender writes: row index, id, label and probabilities."""
    import numpy as np
    import pyarrow as pa

    features = np.stack([table.column(f"f{i}").to_numpy() for i in range(FEATURES)], axis=1)
    label, probabilities = session.run(None, {"X": features})
    return pa.table(
        {
            "id": table.column("id"),
            "label": label,
            "probabilities": pa.FixedSizeListArray.from_arrays(
                pa.array(probabilities.ravel()), probabilities.shape[1]
            ),
        }
    )


def raw_loop(model: Path, data: Path, target: Path) -> float:
    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    writer, row = None, 0
    for batch in pq.ParquetFile(data).iter_batches(
        batch_size=BATCH, columns=["id", *[f"f{i}" for i in range(FEATURES)]]
    ):
        scored = _score_table(session, pa.Table.from_batches([batch]))
        scored = scored.add_column(0, "row", pa.array(range(row, row + batch.num_rows)))
        row += batch.num_rows
        writer = writer or pq.ParquetWriter(target, scored.schema)
        writer.write_table(scored)
    assert writer is not None
    writer.close()
    return time.perf_counter() - started


def farm_run(model: Path, data: Path, home: Path) -> tuple[float, float]:
    """Seconds from submit to done, and the worker's peak RSS in MiB."""
    with PrivateFarm(home, "cpu", {"FARM_BENCH_MAX_BATCH": "8"}) as farm:
        converted = farm.cli("submit", "convert", str(model), "--hw", "cpu", "--precision", "fp32", "--wait")
        job_id = converted.stdout.split()[0]
        started = time.perf_counter()
        farm.cli(
            "submit", "infer", job_id, "--data", str(data), "--out", str(home / "out"), "--hw", "cpu",
            "--keep", "id", "--batch-size", str(BATCH), "--wait",
        )  # fmt: skip
        seconds = time.perf_counter() - started
        assert farm.worker is not None
        return seconds, _peak_rss_mib(farm.worker.pid)


def _peak_rss_mib(pid: int) -> float:
    """The largest peak RSS among a worker's processes (Celery's main one and its pool)."""
    import psutil

    peaks = []
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        status = Path(f"/proc/{process.pid}/status").read_text()
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")]
    return max(peaks)


RAY_SCRIPT = """
import sys, time
sys.path.insert(0, {benchmarks!r})
import ray
from batch_scoring import _score_table, BATCH

class Scorer:
    def __init__(self):
        import onnxruntime as ort
        self.session = ort.InferenceSession({model!r}, providers=["CPUExecutionProvider"])

    def __call__(self, table):
        return _score_table(self.session, table)

environment = {{"env_vars": {{"PYTHONPATH": {benchmarks!r}}}}}
ray.init(num_cpus={cores}, include_dashboard=False, log_to_driver=False, runtime_env=environment)
started = time.perf_counter()
scored = ray.data.read_parquet({data!r}).map_batches(
    Scorer, batch_size=BATCH, batch_format="pyarrow", concurrency=1, num_cpus=0.5
)
scored.write_parquet({out!r})
print(time.perf_counter() - started)
"""


def ray_run(model: Path, data: Path, out: Path) -> float:
    """Ray Data in a process of its own (its workers and object store go when it ends)."""
    script = RAY_SCRIPT.format(
        benchmarks=str(Path(__file__).parent),
        model=str(model),
        data=str(data),
        out=str(out),
        cores=os.cpu_count(),
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"Ray Data failed: {result.stderr.strip()[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
