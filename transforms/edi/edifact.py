"""EDIFACT tokenizer and envelopes (placeholder until the EDIFACT work lands)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from transforms.edi.errors import Problem
from transforms.edi.records import error_dict

__all__ = ["parse"]


def parse(texts: Iterable[str], ctx) -> Iterator[dict]:
    """Yield one error: EDIFACT is not mapped yet."""
    for _ in texts:
        pass
    yield error_dict(Problem("unsupported_set", "EDIFACT is not mapped yet"), file=ctx.file,
                     control=None)
