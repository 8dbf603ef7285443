"""--output-kind: what a user may say an output is (refusals: tests/farm/cli/test_errors.py)."""

from __future__ import annotations

from farm.core.outputkinds import NamedKind, OutputKind, parse_kind, parse_output_kinds


def test_kinds_are_parsed_with_an_optional_channel_axis_for_values() -> None:
    assert parse_output_kinds(["scores=classes", "boxes=values:-1", "emb=embedding"]) == {
        "scores": "classes",
        "boxes": "values:-1",
        "emb": "embedding",
    }
    assert parse_kind("values:2", "d") == NamedKind(OutputKind.VALUES, 2)
    assert parse_kind("sequence", "chars") == NamedKind(OutputKind.SEQUENCE)
    assert parse_output_kinds([]) == {}
