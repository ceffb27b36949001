"""What services need from the outside world; storage provides these, tests use real stores."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from kiosk.domain.records import Record, SignedRecord


class RecordWriter(Protocol):
    """The local chain. A record is durable when append returns."""

    @property
    def chain(self) -> str: ...

    def append(self, type: str, body: Mapping[str, Any]) -> SignedRecord: ...

    def append_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[SignedRecord]: ...

    def append_checked(
        self, build: "Callable[[DirectoryReader], Sequence[tuple[str, Mapping[str, Any]]]]"
    ) -> list[SignedRecord]:
        """Append what ``build`` returns; ``build`` runs inside the write transaction, before anything is
        written, with a reader of exactly the state its records apply to. What it raises aborts the append."""
        ...

    def newest(self, type: str) -> Record | None:
        """The chain's newest record of ``type``."""
        ...


class DirectoryReader(Protocol):
    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def get_many(self, wanted: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """Several documents in one read, in the order asked (None where there is none)."""
        ...

    def all(self, kind: str) -> Iterator[dict[str, Any]]: ...


class ListingDirectory(DirectoryReader, Protocol):
    """The kiosk's directory, with what piles up for years (batches, alerts) listed a page at a time."""

    def count(self, kind: str) -> int: ...

    def newest_batches(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """One page of batch documents, newest first, then by id."""
        ...

    def batches_before(self, batch: dict[str, Any]) -> int:
        """How many batches come before ``batch`` in newest_batches' order."""
        ...

    def batch_ids(self) -> Iterator[str]:
        """Every batch id, streamed."""
        ...

    def open_alerts(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The newest ``limit`` alerts not acknowledged yet, and how many there are in all."""
        ...

    def open_alert_ids(self, kind: str, severity: str, through: str, limit: int) -> tuple[list[str], int]:
        """The newest ``limit`` open alerts of one kind and severity raised at or before ``through``, and how
        many there are in all."""
        ...

    def open_alert_ids_about(self, kind: str, about: Mapping[str, str]) -> list[str]:
        """Every open alert of ``kind`` raised about ``about`` (a record target), oldest first."""
        ...
