"""Tabular benchmark: a forest and a boosted model scored on 2,000,000 rows, by the library's own
predict in one process, by the farm's variants, and by the farm's batch scoring, in one run.

    .venv/bin/python benchmarks/tabular.py [--rows 2000000] [--out results.json]

Models (farm/samples_frameworks.py's task: 8 float features, 3 classes, trained here):
- forest: scikit-learn RandomForestClassifier, 100 trees of depth 10, saved with skops;
- boosted: XGBoost XGBClassifier, 200 trees of depth 6, saved as XGBoost JSON.

Contenders, each reading the same Parquet file (row groups of 65,536) and producing labels and
probabilities for every row:
- native: one fresh process, the library's predict_proba over each row group (its own threads);
- variant: one fresh process, ONNX Runtime's CPU provider on the farm's cpu fp32 variant of the
  model (the file the farm built and verified), over each row group;
- farm: a private `farm up` farm with one cpu worker; `farm submit infer JOB --wait` timed from
  submit to done (the CLI's start included), batches of 4,096 rows, serving the fastest verified
  variant (measured up to batches of 4,096 for tabular models), which may be
  the native model itself; the report says which.

Printed per model: rows/s of each, and variant / native and farm / native.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from privatefarm import PrivateFarm  # noqa: E402

ROW_GROUP = 65_536
SCORER = r"""
import sys, time, numpy as np, pyarrow.parquet as pq
kind, model, data = sys.argv[1:4]
columns = [f"f{i}" for i in range(8)]
if kind == "onnx":
    import onnxruntime as ort
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    predict = lambda x: session.run(None, {"features": x})
elif model.endswith(".skops"):
    import skops.io as sio
    estimator = sio.load(model, trusted=sio.get_untrusted_types(file=model))
    predict = lambda x: estimator.predict_proba(x)
else:
    import xgboost as xgb
    booster = xgb.Booster(model_file=model)
    predict = lambda x: booster.inplace_predict(x)
table = pq.ParquetFile(data)
began = time.perf_counter(); rows = 0
for index in range(table.num_row_groups):
    group = table.read_row_group(index, columns=columns)
    features = np.stack([group[c].to_numpy() for c in columns], axis=1).astype(np.float32)
    predict(features); rows += len(features)
print(rows / (time.perf_counter() - began))
"""


def build(folder: Path, rows: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import skops.io as sio
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    from farm import samples_frameworks

    features, labels = samples_frameworks.tabular_task(20_000)
    paths = {"forest": folder / "forest.skops", "boosted": folder / "boosted.json"}
    forest = RandomForestClassifier(100, max_depth=10, random_state=0).fit(features, labels)
    sio.dump(forest, paths["forest"])
    xgb.XGBClassifier(n_estimators=200, max_depth=6).fit(features, labels).save_model(paths["boosted"])
    np.save(folder / "calib.npy", features[:500])
    scored, _ = samples_frameworks.tabular_task(rows, samples_frameworks.SEED + 1)
    columns = {f"f{i}": scored[:, i] for i in range(samples_frameworks.FEATURES)}
    table = pa.table({"id": np.arange(rows, dtype=np.int64), **columns})
    pq.write_table(table, folder / "rows.parquet", row_group_size=ROW_GROUP)
    return paths


def scorer_rate(kind: str, model: Path, data: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", SCORER, kind, str(model), str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def farm_rates(farm: PrivateFarm, model: Path, folder: Path, rows: int) -> dict[str, object]:
    submitted = farm.cli("submit", "convert", str(model), "--hw", "cpu", "--calib", str(folder / "calib.npy"))
    job = submitted.stdout.split()[0]
    _wait(farm, job)
    report = json.loads(farm.cli("report", job, "--json").stdout)["variants"]
    fp32 = next(r for r in report if r["backend"] == "cpu" and r["precision"] == "fp32")
    measured = {
        f"{row['backend']} {row['precision']}": (round(row["throughput_per_s"] or 0), row["best_batch"])
        for row in report
        if row["passed"]
    }
    print(f"  {model.name}: the farm's best rows/s (batch) per verified variant: {measured}", flush=True)
    variant_file = folder / f"{model.stem}-variant"
    farm.cli("artifacts", job, "--to", str(variant_file))
    onnx_file = next(variant_file.rglob("*.onnx"))
    columns = ",".join(f"f{i}" for i in range(8))
    began = time.perf_counter()
    out = folder / f"{model.stem}-out"
    scoring = farm.cli(
        "submit", "infer", job, "--data", str(folder / "rows.parquet"), "--out", str(out),
        "--hw", "cpu", "--columns", columns, "--keep", "id", "--batch-size", "4096", "--overwrite", "--wait",
    )  # fmt: skip
    farm_s = time.perf_counter() - began
    return {
        "variant_file": onnx_file,
        "farm_rows_per_s": rows / farm_s,
        "fp32_passed": fp32["passed"],
        "served": _served(scoring.stdout),
    }


def _wait(farm: PrivateFarm, job: str) -> None:
    for _ in range(600):
        status = farm.cli("status", job, check=False).stdout
        if "succeeded" in status or "failed" in status:
            return
        time.sleep(1)
    raise TimeoutError(job)


def _served(output: str) -> str:
    """What served, as `farm submit infer` says it: "on cpu (native fp32)"."""
    line = next((line for line in output.splitlines() if line.startswith("scoring ")), "")
    return line.rpartition(" on ")[2] or "(not shown)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--models", default="forest,boosted", help="Comma-separated: forest, boosted.")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="farm-bench-tabular-") as scratch:
        folder = Path(scratch)
        paths = build(folder, args.rows)
        with PrivateFarm(folder / "home", "cpu", {}) as farm:
            for name, model in paths.items():
                if name not in args.models.split(","):
                    continue
                farmed = farm_rates(farm, model, folder, args.rows)
                native = scorer_rate("native", model, folder / "rows.parquet")
                variant = scorer_rate("onnx", farmed["variant_file"], folder / "rows.parquet")
                results[name] = {
                    "native_rows_per_s": native,
                    "variant_rows_per_s": variant,
                    "farm_rows_per_s": farmed["farm_rows_per_s"],
                    "variant_vs_native": variant / native,
                    "farm_vs_native": farmed["farm_rows_per_s"] / native,
                    "served": farmed["served"],
                }
                print(
                    f"{name}: native {native:,.0f} rows/s, ONNX Runtime variant {variant:,.0f} "
                    f"({variant / native:.2f}x), farm batch scoring {farmed['farm_rows_per_s']:,.0f} "
                    f"({farmed['farm_rows_per_s'] / native:.2f}x); {farmed['served']}",
                    flush=True,
                )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
