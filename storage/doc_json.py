"""The JSON text of stored, unsigned documents: directory entries, drafts, Merkle frontiers.

These are derived state, so any valid JSON will do (the signed bytes are
``kiosk.domain.canonical``'s job). One encoder for every store, and orjson,
because the signing path writes a step document with every signature and
ingest derives a document per record: it is several times faster than the
standard library both ways. Non-string keys become strings, as ``json`` did.
"""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dump_doc(doc: Any) -> str:
    return orjson.dumps(doc, option=_OPTIONS).decode("utf-8")


def load_doc(text: str | bytes) -> Any:
    return orjson.loads(text)
