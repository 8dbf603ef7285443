"""``farm submit convert``: queue a model's conversion for one or more hardware classes."""

from __future__ import annotations

from pathlib import Path

import typer

from farm.cli import scoring
from farm.cli.context import celery_app
from farm.cli.follow import follow_conversion
from farm.cli.render import console
from farm.client.jobs import ConvertRequest, submit_convert
from farm.core.errors import FarmError
from farm.core.modelfile import parse_tensor_arg
from farm.core.outputkinds import parse_output_kinds
from farm.core.settings import get_settings

app = typer.Typer(help="Submit work to the farm.", no_args_is_help=True)
app.command()(scoring.infer)


@app.command()
def convert(
    model: Path = typer.Argument(
        ...,
        help="Frozen graph .pb, SavedModel folder, .keras/.h5, .onnx, PyTorch .pt2 (or TorchScript .pt), "
        "scikit-learn .skops, XGBoost .json/.ubj, LightGBM .txt.",
    ),
    hw: str = typer.Option(..., "--hw", help="Hardware classes, comma-separated: cpu,gpu,arm,fpga."),
    inputs: list[str] = typer.Option(
        [], "--inputs", help="Input tensor NAME[:shape], e.g. image:0:?,224,224,3. Repeat for several."
    ),
    outputs: list[str] = typer.Option([], "--outputs", help="Output tensor NAME. Repeat for several."),
    precision: str = typer.Option(
        "", "--precision", help="Precisions to build, e.g. fp32,int8 (fp32 fp16 dynamic int8); default: all."
    ),
    calib: Path | None = typer.Option(
        None,
        "--calib",
        help="Calibration samples (.npy/.npz/.parquet, labels optional); a fifth is held out to verify.",
    ),
    evaluation: Path | None = typer.Option(
        None, "--eval", help="Labelled verification samples (.npz with 'labels', .parquet with 'label')."
    ),
    atol: float | None = typer.Option(None, "--atol", min=0, help="fp32: absolute tolerance."),
    rtol: float | None = typer.Option(None, "--rtol", min=0, help="fp32: relative tolerance."),
    min_top1: float | None = typer.Option(
        None, "--min-top1", min=0, max=1, help="Least top-1 agreement for classifier outputs, 0..1."
    ),
    max_mean_error: float | None = typer.Option(
        None, "--max-mean-error", min=0, help="fp16/dynamic/int8: most mean error, share of output scale."
    ),
    max_accuracy_drop: float | None = typer.Option(
        None, "--max-accuracy-drop", min=0, max=100, help="fp16/dynamic/int8 with labels: most points lost."
    ),
    max_channel_error: float | None = typer.Option(
        None,
        "--max-channel-error",
        min=0,
        help="Reduced precisions: most RMS error per output channel, share of its spread.",
    ),
    min_cosine: float | None = typer.Option(
        None, "--min-cosine", min=-1, max=1, help="Embedding outputs: least mean cosine similarity."
    ),
    max_expected_loss: float | None = typer.Option(
        None,
        "--max-expected-loss",
        min=0,
        max=1,
        help="Deciding outputs: most accuracy lost were the original's probabilities true, 0..1.",
    ),
    max_near_flips: float | None = typer.Option(
        None, "--max-near-flips", min=0, max=1, help="Deciding outputs: most share flipped or near it, 0..1."
    ),
    output_kind: list[str] = typer.Option(
        [],
        "--output-kind",
        help="What an output is, NAME=KIND: classes, binary, sequence, values[:AXIS], embedding "
        "(default: inferred). Repeat for several.",
    ),
    search: bool = typer.Option(
        True, "--search/--no-search", help="A failing INT8 variant tries its backend's other recipes."
    ),
    strict: bool = typer.Option(False, "--strict", help="Any variant failing verification fails the job."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when cached variants match."),
    allow_pickle: bool = typer.Option(
        False,
        "--allow-pickle",
        help="Load a pickle/joblib model: unpickling runs code from the file on every worker that loads it.",
    ),
    wait: bool = typer.Option(False, "--wait", help="Show live progress until every task ends."),
    timeout: float = typer.Option(
        0, "--timeout", min=0, help="With --wait: give up after this many seconds."
    ),
) -> None:
    """Convert MODEL into a verified, benchmarked variant per hardware class."""
    settings = get_settings()
    tensor_args = [parse_tensor_arg(text) for text in inputs]
    thresholds = {
        "atol": atol,
        "rtol": rtol,
        "min_top1": min_top1,
        "max_mean_error": max_mean_error,
        "max_accuracy_drop": max_accuracy_drop,
        "max_channel_error": max_channel_error,
        "min_cosine": min_cosine,
        "max_expected_loss": max_expected_loss,
        "max_near_flips": max_near_flips,
    }
    asked = ConvertRequest(
        model,
        hw,
        tensor_args,
        outputs,
        precision,
        calib,
        evaluation,
        thresholds,
        force,
        strict,
        output_kinds=parse_output_kinds(output_kind),
        search=search,
        allow_pickle=allow_pickle,
    )
    job = submit_convert(settings, celery_app(), asked)
    console.print(job.id)
    if wait:
        view = follow_conversion(job.id, timeout)  # its last table ends with the job's warnings
        if view.state.value == "failed":
            raise FarmError(f"job {job.id} failed: see `farm status {job.id}`")
