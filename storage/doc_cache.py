"""The write connection's memory of directory documents, bounded by their count and their size.

A signature reads the signer's account and the batch, and writes a step's
document back; the sign dialog reads the same. Decoding them afresh each time
was most of what a late step of a large batch cost (before step documents, a
75 KB batch document twice per signature). So the documents this connection
reads or writes are kept decoded, and shared: whoever gets one must not change
it (the projectors copy before they change anything).

Decoded documents take several times the room of their JSON text, and a
terminal keeps its memory small, so the store starts over (``full``) once the
documents it remembered since it last did add up to ``MAX_TEXT`` characters of
JSON (a document written again counts again: the bound errs towards starting
over) or ``MAX_DOCS`` documents.
"""

from __future__ import annotations

from typing import Any

from storage.doc_json import load_doc

MAX_DOCS = 16384  # a batch's view asks for every step, recorded or not: "no document" is remembered too
MAX_TEXT = 2 * 1024 * 1024  # about 10-20 MB decoded


class DocumentCache(dict):
    """(kind, key) -> decoded document, or None for "no such row"; a plain dict to its readers."""

    __slots__ = ("text_size",)

    def __init__(self) -> None:
        super().__init__()
        self.text_size = 0

    def put(self, pair: tuple[str, str], doc: Any, text_size: int) -> Any:
        """Remember ``doc`` (its JSON text is ``text_size`` long) and return it."""
        self[pair] = doc
        self.text_size += text_size
        return doc

    def put_text(self, pair: tuple[str, str], text: str | None) -> Any:
        """Remember a row as read (its JSON text, or None: no such row) and return it decoded."""
        return self.put(pair, None, 0) if text is None else self.put(pair, load_doc(text), len(text))

    def clear(self) -> None:
        super().clear()
        self.text_size = 0

    @property
    def full(self) -> bool:
        return len(self) > MAX_DOCS or self.text_size > MAX_TEXT
