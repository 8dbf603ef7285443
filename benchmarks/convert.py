"""Conversion benchmark: every cpu/arm/fpga variant of Keras-applications models, through a real farm.

    .venv/bin/python benchmarks/convert.py [--models mobilenetv2,resnet50] [--out results.json]

For each model (built offline, ``weights=None``) it starts a private farm (its own Redis, SQLite
and artifact folder under a temporary home), runs ONE worker serving cpu, arm and fpga so tasks
run one after another and never time each other, submits ``--hw cpu,arm,fpga``, and prints:
worker time per hardware class (build = convert + verify; bench = timing), and each variant's
speedup over native TensorFlow: timed in windows alternating with the baseline's on the same
worker, the median of the paired ratios and their spread. Then it resubmits the same model and
times the cached resubmission end to end (a `farm submit ... --wait` process).

Accuracy: the digits CNN of ``farm.samples`` (trained here on scikit-learn's bundled images),
submitted with its labelled training images as ``--calib`` and its 540 held-out images as
``--eval``: the farm's own report gives each variant's accuracy beside the original's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from privatefarm import PrivateFarm  # noqa: E402

from farm.client.report import build_report  # noqa: E402

BENCH_ENV = {"FARM_BENCH_MAX_BATCH": "8"}  # bounded sweep: 1, 2, 4, 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenetv2,resnet50")
    parser.add_argument("--hw", default="cpu,arm,fpga", help="Hardware classes to convert for.")
    parser.add_argument("--cpu-int8", choices=["s8", "u8"], default="u8", help="FARM_CPU_INT8_ACTIVATIONS.")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--submit-args",
        default="",
        help="More `farm submit convert` options, e.g. '--precision int8 --max-mean-error 0' (every INT8 "
        "recipe fails, so the recipe search runs to its time bound: the worst case).",
    )
    parser.add_argument("--out", type=Path, default=None, help="Also write the results as JSON.")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": _machine()}
    with (
        tempfile.TemporaryDirectory(prefix="farm-bench-") as scratch,
        PrivateFarm(
            Path(scratch) / "home", "cpu,arm,fpga", {**BENCH_ENV, "FARM_CPU_INT8_ACTIVATIONS": args.cpu_int8}
        ) as farm,
    ):
        for name in filter(None, args.models.split(",")):  # --models "": the accuracy part only
            model = build_application(name, Path(scratch))
            results[name] = convert_and_compare(farm, model, args.hw, args.submit_args.split())
        if not args.skip_accuracy:
            results["digits"] = digits_accuracy(farm, Path(scratch), args.hw)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def build_application(name: str, folder: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    constructors = {"mobilenetv2": keras.applications.MobileNetV2, "resnet50": keras.applications.ResNet50}
    model = constructors[name](weights=None, input_shape=(224, 224, 3))
    path = folder / f"{name}.keras"
    model.save(path)
    return path


def convert_and_compare(farm: PrivateFarm, model: Path, hardware: str, extra: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    submitted = farm.cli("submit", "convert", str(model), "--hw", hardware, *extra, "--wait", check=False)
    wall_s = time.perf_counter() - started
    job_id = submitted.stdout.split()[0]
    view = farm.view(job_id)
    rows = build_report(view)
    task_s = {t.hardware: (t.finished_at - t.started_at).total_seconds() for t in view.tasks}
    build_s = {hw: sum(r.build_s for r in rows if r.hardware == hw) for hw in task_s}
    cached_s = _time_cached_resubmission(farm, model, hardware, extra)
    print(f"\n## {model.stem}: job {job_id}, {wall_s:.0f} s wall for {hardware} on one worker")
    print("worker time per class (total / convert+verify): " + ", ".join(
        f"{hw} {task_s[hw]:.0f} s / {build_s[hw]:.0f} s" for hw in sorted(task_s)
    ))  # fmt: skip
    print(f"all variants, worker time: {sum(task_s.values()):.0f} s; convert+verify only: "
          f"{sum(build_s.values()):.0f} s; cached resubmission end to end: {cached_s:.2f} s")  # fmt: skip
    print("| hardware | variant | verified (top-1, mean err) | p50 b=1 | speedup b=1 (spread) "
          "| best throughput | throughput vs native |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        verified = "baseline" if r.is_baseline else ("pass" if r.passed else "FAIL")
        for note in r.notes:
            if note.startswith("recipe "):
                print(f"  {r.hardware} {r.backend} {r.precision}: {note}")
        top1 = "-" if r.top1_agreement is None else f"{r.top1_agreement:.0%}"
        print(
            f"| {r.hardware} | {r.backend} {r.format} {r.precision} "
            f"| {verified} ({top1}, {r.mean_error:.2%}) | {_ms(r.p50_ms)} | {_speedup(r)} "
            f"| {r.throughput_per_s or 0:.1f}/s (b={r.best_batch}) | {_x(r.throughput_speedup)} |"
        )
    return {
        "job": job_id,
        "wall_s": wall_s,
        "task_s": task_s,
        "build_s": build_s,
        "cached_resubmission_s": cached_s,
        "rows": [r.to_json() for r in rows],
        "errors": {t.hardware: t.error for t in view.tasks if t.error},
    }


def _time_cached_resubmission(farm: PrivateFarm, model: Path, hardware: str, extra: list[str]) -> float:
    started = time.perf_counter()
    result = farm.cli("submit", "convert", str(model), "--hw", hardware, *extra, "--wait", check=False)
    elapsed = time.perf_counter() - started
    if "reused from the cache" not in result.stdout:
        print(f"warning: the resubmission was not served from the cache:\n{result.stdout[-2000:]}")
    return elapsed


def digits_accuracy(farm: PrivateFarm, folder: Path, hardware: str) -> dict[str, Any]:
    """The digits CNN, calibrated on its labelled training images and verified on the held-out
    ones (``--eval``): every variant's accuracy, as the farm reports it."""
    from farm.samples import write_digits_classifier

    paths = write_digits_classifier(folder / "digits")
    calib, evaluation = str(paths["calib"]), str(paths["eval"])
    submitted = farm.cli(
        "submit", "convert", str(paths["model"]), "--hw", hardware, "--calib", calib, "--eval", evaluation,
        "--wait", check=False,
    )  # fmt: skip
    rows = build_report(farm.view(submitted.stdout.split()[0]))
    print("\n## digits CNN (scikit-learn digits, 540 held-out images given as --eval)\n"
          "| hardware | variant | verdict | accuracy | vs native |\n|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        verdict = "baseline" if r.is_baseline else ("pass" if r.passed else "FAIL")
        change = "" if r.is_baseline else f"{r.accuracy_change_points:+.2f} points"
        variant = f"{r.backend} {r.format} {r.precision}"
        print(f"| {r.hardware} | {variant} | {verdict} | {r.accuracy:.2%} | {change} |")
    return {"rows": [r.to_json() for r in rows]}


def _machine() -> str:
    from farm.core.hosts import describe_cpu

    return describe_cpu()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _speedup(row: Any) -> str:
    if row.is_baseline or row.speedup_low is None:
        return _x(row.speedup)
    return f"{row.speedup:.2f}x ({row.speedup_low:.2f}-{row.speedup_high:.2f})"


if __name__ == "__main__":
    main()
