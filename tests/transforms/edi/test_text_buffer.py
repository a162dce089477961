"""TextBuffer: decoded chunks read on demand; `batches` drives a tokenizer's two states until the text runs out."""

from __future__ import annotations

from collections.abc import Iterator

from invrecon.transforms.edi.text_buffer import TextBuffer


class _Lines(TextBuffer):
    """A toy tokenizer: an interchange is `<` ... `>`; inside it, one batch per complete line."""

    def start_interchange(self) -> Iterator[str]:
        while not self.eof and not self.buf:
            self.read()
        if not self.buf:
            self.finished = True
            return
        if self.buf.startswith("<"):
            self.buf, self.delims = self.buf[1:], "\n"
            yield "header"
        else:
            yield f"junk {self.buf[0]!r}"
            self.buf = self.buf[1:]

    def next_batch(self) -> list | None:
        if ">" not in self.buf and not self.eof:
            self.read()
            return None
        body, _, self.buf = self.buf.partition(">")
        lines = [line for line in body.split(self.delims) if line]
        self.delims = None  # the interchange is over
        return lines


def test_read_skips_empty_chunks_and_notes_the_end():
    buf = TextBuffer(["", "ab", "", "c"])
    buf.read()
    assert (buf.buf, buf.eof) == ("ab", False)
    buf.read()
    buf.read()
    assert (buf.buf, buf.eof) == ("abc", True)


def test_batches_alternate_headers_and_segments_in_file_order():
    chunks = ["x<a\n", "b\n>", "", "<c>"]
    assert list(_Lines(chunks).batches()) == ["junk 'x'", "header", ["a", "b"], "header", ["c"]]


def test_an_empty_source_gives_nothing():
    assert list(_Lines([]).batches()) == []
