"""Hold the unread text of a file's decoded chunks for a tokenizer: `TextBuffer`, read on demand.

The X12 and EDIFACT tokenizers (`x12.x12_batches`, `edifact.edifact_batches`) are `TextBuffer`s:
between interchanges they look for the next header (`start_interchange`), inside one they cut
the buffer into batches of segments (`next_batch`), and `batches` drives the two until the text
runs out. Only what is not yet cut is held, so memory stays flat in the file size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["TextBuffer"]


class TextBuffer:
    """Decoded text chunks read into `buf` as a tokenizer needs them; `delims` is None between interchanges."""

    def __init__(self, chunks: Iterable[str]) -> None:
        self.source = iter(chunks)
        self.buf = ""
        self.eof = False
        self.finished = False
        self.delims: Any = None

    def read(self) -> None:
        """Append the next non-empty chunk to the buffer, or note the end of the data."""
        for piece in self.source:
            if piece:
                self.buf += piece
                return
        self.eof = True

    def start_interchange(self) -> Iterator[Any]:
        """Between interchanges: yield the header (setting `delims`) or problems; set `finished` at the end."""
        raise NotImplementedError

    def next_batch(self) -> list | None:
        """Inside an interchange: the next batch of segments (None or []: none yet); `delims` None after its trailer."""
        raise NotImplementedError

    def batches(self) -> Iterator[Any]:
        """Headers, problems and batches of segments, in file order, until the text runs out."""
        while not self.finished:
            if self.delims is None:
                yield from self.start_interchange()
            else:
                batch = self.next_batch()
                if batch:
                    yield batch
