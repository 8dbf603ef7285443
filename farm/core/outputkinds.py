"""What a model's output is, for verification: class scores, a yes/no decision, class scores per
step, values (regression, boxes, landmarks, feature maps, a detector's mixed tensor) or an
embedding. Each kind has its own rule (workers/verify.py). The worker infers the kind from the
original's outputs; a user names it at submit with ``--output-kind NAME=KIND``, and for values
the axis of its channels with ``NAME=values:AXIS``.

In the kernel because the client checks the names at submit and the worker applies them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from farm.core.errors import UsageError

THIN_EVIDENCE = 50  # a verdict reached on fewer judging samples says its evidence is thin


class OutputKind(str, Enum):
    CLASSES = "classes"  # (batch, classes) scores: top-1 agreement and mean error
    BINARY = "binary"  # (batch,) or (batch, 1) probability or logit: decisions flipped at its threshold
    SEQUENCE = "sequence"  # (batch, time, ..., classes) scores: top-1 agreement per step
    VALUES = "values"  # anything else: error per channel, relative to that channel's own spread
    EMBEDDING = "embedding"  # (batch, dims) vectors compared by direction: cosine similarity


KIND_HELP = {
    OutputKind.CLASSES: "class scores, one row per sample",
    OutputKind.BINARY: "one probability (threshold 0.5) or logit (threshold 0) per sample",
    OutputKind.SEQUENCE: "class scores per step, classes on the last axis",
    OutputKind.VALUES: "regression values, boxes, landmarks, feature maps, mixed tensors",
    OutputKind.EMBEDDING: "vectors compared by direction",
}


@dataclass(frozen=True)
class NamedKind:
    kind: OutputKind
    channel_axis: int | None = None  # values only: None infers it (the smallest non-batch axis)

    def to_text(self) -> str:
        return self.kind.value if self.channel_axis is None else f"{self.kind.value}:{self.channel_axis}"


def parse_output_kinds(texts: list[str]) -> dict[str, str]:
    """``--output-kind`` values (``NAME=KIND`` or ``NAME=values:AXIS``) as {output name: kind text},
    checked; a bad one is the user's error, named."""
    kinds: dict[str, str] = {}
    for text in texts:
        name, _, spec = text.partition("=")
        if not name or not spec:
            raise UsageError(f"--output-kind wants NAME=KIND, not {text!r}")
        if name in kinds:
            raise UsageError(f"--output-kind names output {name} twice")
        kinds[name] = parse_kind(spec, name).to_text()
    return kinds


def parse_kind(spec: str, output: str) -> NamedKind:
    kind_text, _, axis_text = spec.partition(":")
    try:
        kind = OutputKind(kind_text)
    except ValueError:
        choices = ", ".join(kind.value for kind in OutputKind)
        raise UsageError(f"--output-kind {output}: unknown kind {kind_text!r} (one of {choices})") from None
    if not axis_text:
        return NamedKind(kind)
    if kind is not OutputKind.VALUES:
        raise UsageError(f"--output-kind {output}: only values take a channel axis ({spec!r})")
    try:
        axis = int(axis_text)
    except ValueError:
        raise UsageError(
            f"--output-kind {output}: the channel axis must be a number, not {axis_text!r}"
        ) from None
    if axis == 0:
        raise UsageError(f"--output-kind {output}: axis 0 is the batch, not a channel axis")
    return NamedKind(kind, axis)


def unknown_outputs(named_kinds: dict[str, str], outputs: list[str]) -> str:
    """Why ``--output-kind`` names outputs the model lacks, or "" when it names none: said by the
    client where it can read a model's outputs, else by the worker."""
    unknown = [name for name in named_kinds if name not in outputs]
    if not unknown:
        return ""
    return (
        f"--output-kind names {', '.join(unknown)}, not an output of the model (it has {', '.join(outputs)})"
    )
