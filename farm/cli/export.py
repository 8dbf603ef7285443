"""``farm export JOB --format triton --to DIR``: a job's verified variants, ready to deploy."""

from __future__ import annotations

from pathlib import Path

import typer

from farm.cli.render import console
from farm.core.settings import get_settings


def export(
    job_id: str = typer.Argument(..., help="A finished conversion job, from `farm jobs`."),
    fmt: str = typer.Option(
        ..., "--format", help="triton: a Triton model repository, and bundles for what Triton cannot serve."
    ),
    to: Path = typer.Option(..., "--to", help="The folder to write: new, or empty."),
) -> None:
    """Write a job's verified variants as a Triton model repository (DIR/triton) and standalone
    bundles (DIR/bundles: TFLite, the DPU's XINT8 ONNX), each with its verification record."""
    from farm.client.export import export_job  # numpy and onnx: loaded by this command only

    exported, left = export_job(get_settings(), job_id, fmt, to)
    for item in exported:
        console.print(f"{item.kind} {item.name}: {item.path} ({item.summary})", markup=False, soft_wrap=True)
    for variant, reason in left:
        what = f"{variant.hardware} {variant.backend} {variant.precision}"
        console.print(f"not exported: {what} {reason}", markup=False, soft_wrap=True)
