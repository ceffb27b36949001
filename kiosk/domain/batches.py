"""Executed batch records, derived from records only (replaying the chain rebuilds them exactly).

A step's signatures are bound to the hash of the exact content they signed
(values, units, step, recipe version). A correction never edits: it is a new
record with the old and new values and a reason, and it invalidates the
step's earlier signatures so the step must be signed again.

A batch is stored as directory documents: one for the batch (``BATCH``: its
recipe, title and start; changed only by a cancellation) and one per step that has
anything recorded (``STEP``, keyed by ``step_key``). A record changes only its
step's document, so a signature's cost, and what the central store keeps per
signature, does not grow with the batch: with the whole batch in one
document, the 150th signature of a batch rewrote 75 KB, and the central
directory history of a 150-step batch took 6 MB against 190 KB of records.
``view`` puts the documents together as the batch record readers show.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable, Mapping, Sequence

from kiosk.domain.canonical import encode
from kiosk.domain.clock import utc_text
from kiosk.domain.directory import Change, DirectoryConflict, Getter
from kiosk.domain.records import Record
from kiosk.domain.recipes import Meaning, Recipe, Step, check_values, parse_recipe_dict

BATCH = "batch"
STEP = "batch_step"
RECIPE = "recipe"


def ids_alike(batch_ids: Iterable[str], wanted: str) -> list[str]:
    """The ids among ``batch_ids`` that are ``wanted`` without case: PB-2026-001 and pb-2026-001 on one floor
    are one batch to the people on it (a terminal refuses to start the second). Several only where offline
    terminals each started one."""
    folded = wanted.casefold()
    return sorted(bid for bid in batch_ids if bid.casefold() == folded)


def step_key(batch_id: str, step_id: str) -> str:
    """A step document's key; step ids never hold "/" (recipes.py), so the last "/" separates the two."""
    return f"{batch_id}/{step_id}"


def documents(batch_id: str, recipe: Recipe) -> tuple[tuple[str, str], ...]:
    """The (kind, key) of a batch's own document and of each of its steps' in recipe order: what ``view`` needs."""
    memo_key = (batch_id, recipe.key, recipe.content_hash)
    pairs = _PAIRS.get(memo_key)
    if pairs is None:
        if len(_PAIRS) >= 64:
            _PAIRS.clear()
        pairs = _PAIRS[memo_key] = ((BATCH, batch_id), *((STEP, step_key(batch_id, s.id)) for s in recipe.steps))
    return pairs


_PAIRS: dict[tuple[str, str, str], tuple[tuple[str, str], ...]] = {}


def view(recipe: Recipe, docs: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The batch record as shown: the batch's document with ``steps``, each recorded step's document by id.

    ``docs`` are the documents ``documents`` names, as read (None where a
    step has nothing recorded). They are shared, and so are they in the view.
    """
    return {**docs[0], "steps": {step.id: doc for step, doc in zip(recipe.steps, docs[1:]) if doc is not None}}


def read_view(batch: Mapping[str, Any], recipe: Recipe, get_many: Callable[[list], list]) -> dict[str, Any]:
    """``view`` of a batch whose own document is ``batch``, its steps read with ``get_many`` in one call."""
    return view(recipe, [batch, *get_many(list(documents(batch["batch_id"], recipe)[1:]))])


def content_hash(batch_id: str, step_id: str, recipe_key: str, recipe_hash: str,
                 values: Mapping[str, str], units: Mapping[str, str]) -> str:
    """SHA-256 of exactly what a signature is about; change any of it and the signature no longer applies.

    One signature computes it three times (the dialog, the rule check in the
    transaction, the projector's check of the record), always of the same
    content, so the last few answers are kept: the key is the content itself.
    """
    memo_key = (batch_id, step_id, recipe_key, recipe_hash, tuple(values.items()), tuple(units.items()))
    try:
        digest = _RECENT_HASHES.get(memo_key)
    except TypeError:  # a value that is not a string (a malformed record): no memo, encode() names the fault
        memo_key, digest = None, None
    if digest is None:
        content = {"batch_id": batch_id, "step_id": step_id, "recipe": recipe_key, "recipe_hash": recipe_hash,
                   "values": dict(values), "units": dict(units)}
        digest = hashlib.sha256(encode(content)).hexdigest()
        if memo_key is not None:
            if len(_RECENT_HASHES) >= 64:
                _RECENT_HASHES.clear()
            _RECENT_HASHES[memo_key] = digest
    return digest


_RECENT_HASHES: dict[tuple, str] = {}


_PARSED: dict[tuple[str, str], Recipe] = {}


def pending(recipe_docs: Iterable[Mapping[str, Any]], today: str) -> dict[str, str]:
    """Each registered recipe version that does not take effect yet, with the (site-local) date it does.

    QA registers an approved master record ahead of the day it applies
    (``effective_from`` in the recipe); until then it is on every terminal
    but no batch starts from it, and the version before it stays current.
    """
    return {doc["key"]: eff for doc in recipe_docs if (eff := recipe_from_doc(doc).effective_from) and eff > today}


def superseded(recipe_docs: Iterable[Mapping[str, Any]], today: str) -> dict[str, str]:
    """Each registered recipe version that a higher version in effect replaces, with that version's key.

    New batches start from the current version only: a batch made to an
    obsolete master record is what inspectors look for. Batches already
    started keep their version to the end.
    """
    docs = list(recipe_docs)
    waiting = pending(docs, today)
    latest: dict[str, Mapping[str, Any]] = {}
    for doc in docs:
        if doc["key"] not in waiting and (doc["id"] not in latest or doc["version"] > latest[doc["id"]]["version"]):
            latest[doc["id"]] = doc
    return {doc["key"]: latest[doc["id"]]["key"] for doc in docs
            if doc["key"] not in waiting and latest[doc["id"]] is not doc}


def recipe_from_doc(doc: Mapping[str, Any]) -> Recipe:
    """Recipes are immutable per (key, content hash), so each is parsed once per process."""
    cache_key = (doc["key"], doc["content_hash"])
    recipe = _PARSED.get(cache_key)
    if recipe is None:
        recipe = parse_recipe_dict(doc["source"], doc["key"])
        if recipe.content_hash != doc["content_hash"]:
            raise ValueError(f"recipe {doc['key']}: stored content hash does not match its content")
        _PARSED[cache_key] = recipe
    return recipe


def step_statuses(recipe: Recipe, batch: Mapping[str, Any]) -> dict[str, str]:
    """Every step's status in one pass (prerequisites are always earlier steps).

    A recursive walk per step is quadratic and overflows Python's stack on a
    long linear recipe (10,000 steps); one forward pass is linear.
    """
    out: dict[str, str] = {}
    states = batch["steps"]
    for step in recipe.steps:
        if step.prerequisites and any(out.get(pre) != "done" for pre in step.prerequisites):
            out[step.id] = "locked"
        else:
            out[step.id] = _own_status(states.get(step.id), step)
    return out


BATCH_STATUSES = ("not_started", "in_progress", "needs_resign", "complete", "released", "cancelled")
CANCEL_ROLES = ("supervisor", "qa")


def cancelled_note(batch: Mapping[str, Any]) -> str:
    """Why nothing more is recorded on a cancelled batch ('' for a batch that is not cancelled)."""
    c = batch.get("cancelled")
    if not c:
        return ""
    return (f"batch {batch['batch_id']} was cancelled by {c['name']} ({c['role']}) at {utc_text(c['at'])} "
            f"UTC: {c['reason']}. Nothing more is recorded on it.")


def batch_status(recipe: Recipe, batch: Mapping[str, Any], statuses: Mapping[str, str] | None = None) -> str:
    """One of BATCH_STATUSES: what a supervisor asks of a batch before opening it.

    Released needs every step done and a valid Released signature; a
    recipe without that meaning ends at complete. A correction that
    invalidated signatures shows as needs_resign until they are given again.
    A cancelled batch is cancelled, whatever its steps say.
    """
    if batch.get("cancelled"):
        return "cancelled"
    statuses = statuses if statuses is not None else step_statuses(recipe, batch)
    if all(statuses[step.id] == "done" for step in recipe.steps):
        released = any(s["meaning"] == Meaning.RELEASED.value
                       for step in recipe.steps for s in valid_signatures(batch, step.id))
        return "released" if released else "complete"
    if "needs_resign" in statuses.values():
        return "needs_resign"
    if any(statuses[step.id] != "open" and statuses[step.id] != "locked" for step in recipe.steps):
        return "in_progress"
    return "not_started"


def exceptions(recipe: Recipe, batch: Mapping[str, Any]) -> list[str]:
    """What a reviewer looks at before approving or releasing the batch, in recipe order.

    Review by exception: every recorded value outside its limits, every
    comment or deviation reference given with a signature, every correction,
    every correction by a role that does not enter the step's values, every
    signature given out of the recipe's order and every signature taken back.
    A batch with none of these can be reviewed from its summary; each one
    needs a look at its step.
    """
    out: list[str] = []
    for step in recipe.steps:
        state = batch["steps"].get(step.id) or {}
        out += [f"{step.title}: {f.message}" for f in check_values(step, state.get("values") or {}) if f.out_of_range]
        for sig in state.get("signatures", ()):
            if sig.get("comment") or sig.get("deviation_ref"):
                out.append(f"{step.title}: {sig['meaning']} by {sig['name']} with comment "
                           f"'{sig.get('comment', '')}', deviation '{sig.get('deviation_ref', '')}'")
        out += [f"{step.title}: corrected by {c['by']} ({utc_text(c['at'])} UTC): {c['reason']}"
                for c in state.get("corrections", ())]
        out += _corrected_without_authority(step, state)
        out += _out_of_order(step, state)
        taken_back = [s for s in state.get("signatures", ()) if not s.get("valid")]
        corrected = [s for s in taken_back if s.get("invalidated_cause", "correction") == "correction"]
        if corrected:
            out.append(f"{step.title}: {len(corrected)} signature{'s' if len(corrected) > 1 else ''} "
                       "taken back by a correction")
        out += [f"{step.title}: {s['meaning']} by {s['name']} taken back: {s['invalidated_reason']}"
                for s in taken_back if s not in corrected]
    return out


def _corrected_without_authority(step: Step, state: Mapping[str, Any]) -> list[str]:
    """Corrections by a role that does not enter the step's values (``Step.recording``).

    This terminal refuses them; a terminal older than 0.5.0 did not check it.
    A correction projected before then does not name its role and is not
    judged here: its author is in the line above and in the record.
    """
    allowed = step.recording.roles
    return [f"{step.title}: corrected by {c['by']} as {c['role']}; its values are entered and corrected by "
            f"{' or '.join(allowed)}" for c in state.get("corrections", ()) if c.get("role", allowed[0]) not in allowed]


def _out_of_order(step: Step, state: Mapping[str, Any]) -> list[str]:
    """Standing signatures not preceded by those the recipe lists before them.

    This terminal refuses them; a terminal older than 0.4.0 did not check it,
    and its records join the batch record all the same.
    """
    valid = {s["meaning"]: s for s in state.get("signatures", ()) if s.get("valid")}
    out = []
    for i, rule in enumerate(step.signatures):
        sig = valid.get(rule.meaning.value)
        if sig is None:
            continue
        earlier = [r.meaning.value for r in step.signatures[:i]
                   if r.meaning.value not in valid or valid[r.meaning.value]["signed_at"] > sig["signed_at"]]
        if earlier:
            out.append(f"{step.title}: {sig['meaning']} by {sig['name']} is not preceded by {earlier[0]}, "
                       "which the recipe lists before it")
    return out


def step_status(recipe: Recipe, batch: Mapping[str, Any], step: Step) -> str:
    """locked | open | in_progress | needs_resign | done."""
    return step_statuses(recipe, batch)[step.id]


def _own_status(state: Mapping[str, Any] | None, step: Step) -> str:
    state = state or {}
    valid = {s["meaning"] for s in state.get("signatures", ()) if s.get("valid")}
    if step.meanings <= valid:
        return "done"
    if not valid and (state.get("corrections") or state.get("signatures")):
        return "needs_resign"  # corrected here, or decided before a correction of an earlier step
    return "in_progress" if valid or state.get("values") else "open"


def valid_signatures(batch: Mapping[str, Any], step_id: str) -> list[dict[str, Any]]:
    return [s for s in (batch["steps"].get(step_id) or {}).get("signatures", []) if s.get("valid")]


def project(record: Record, get: Getter) -> list[Change]:
    handler = _HANDLERS.get(record.type)
    return handler(record, get) if handler else []


def _recipe_registered(record: Record, get: Getter) -> list[Change]:
    body = record.body
    recipe = parse_recipe_dict(body["recipe"], body["key"])
    if recipe.key != body["key"] or recipe.content_hash != body["content_hash"]:
        raise DirectoryConflict("the recipe's key or content hash does not match its content")
    existing = get(RECIPE, recipe.key)
    if existing is not None and existing["content_hash"] != recipe.content_hash:
        raise DirectoryConflict(f"recipe {recipe.key} is already registered with other content; raise the version")
    return [(RECIPE, recipe.key, {"key": recipe.key, "id": recipe.id, "version": recipe.version,
                                  "title": recipe.title, "product": recipe.product,
                                  "content_hash": recipe.content_hash, "source": body["recipe"],
                                  "registered_at": record.ts})]


def _batch_created(record: Record, get: Getter) -> list[Change]:
    body = record.body
    bid = body["batch_id"]
    if get(BATCH, bid) is not None:
        raise DirectoryConflict(f"batch {bid} already exists")
    recipe = get(RECIPE, body["recipe_key"])
    if recipe is None or recipe["content_hash"] != body["recipe_hash"]:
        raise DirectoryConflict(f"recipe {body['recipe_key']} is not registered with that content")
    return [(BATCH, bid, {"batch_id": bid, "recipe_key": body["recipe_key"], "recipe_hash": body["recipe_hash"],
                          "title": recipe["title"], "created_at": record.ts,
                          "created_by": body["actor"]["user_id"]})]


def _batch_cancelled(record: Record, get: Getter) -> list[Change]:
    body = record.body
    batch = get(BATCH, body["batch_id"])
    if batch is None:
        raise DirectoryConflict(f"no batch {body['batch_id']}")
    if batch.get("cancelled"):
        raise DirectoryConflict(cancelled_note(batch))
    actor = body["actor"]
    return [(BATCH, batch["batch_id"], {**batch, "cancelled": {
        "by": actor["user_id"], "name": actor["name"], "role": actor["role"], "at": record.ts,
        "reason": body["reason"], "record_id": record.id}})]


def _signed(record: Record, get: Getter) -> list[Change]:
    body = record.body
    batch, key, step = _step_copy(body, get, create=True)
    expected = content_hash(batch["batch_id"], body["step_id"], batch["recipe_key"], batch["recipe_hash"],
                            body["values"], body["units"])
    if body["content_hash"] != expected:
        raise DirectoryConflict("the signature's content hash does not match the values it carries")
    current = [s for s in step["signatures"] if s["valid"]]
    if current and current[0]["content_hash"] != expected:
        raise DirectoryConflict("the step's content changed since it was signed; record a correction first")
    man = body["manifestation"]
    if any(s["meaning"] == man["meaning"] for s in current):
        raise DirectoryConflict(f"{man['meaning']} is already signed for this step")
    step["values"] = dict(body["values"])
    step["units"] = dict(body["units"])
    step["content_hash"] = expected
    step["signatures"].append({
        "meaning": man["meaning"], "user_id": man["user_id"], "name": man["printed_name"], "role": man["role"],
        "signed_at": man["signed_at"], "tz": man["tz"], "record_id": record.id, "content_hash": expected,
        "valid": True, "comment": body.get("comment", ""), "deviation_ref": body.get("deviation_ref", ""),
    })
    return [(STEP, key, step)]


def _corrected(record: Record, get: Getter) -> list[Change]:
    body = record.body
    _batch, key, step = _step_copy(body, get, create=True)
    step["corrections"].append({"old": body["old"], "new": body["new"], "reason": body["reason"],
                                "by": body["actor"]["user_id"], "role": body["actor"]["role"], "at": record.ts,
                                "record_id": record.id})
    step["values"] = dict(body["new"])
    step["content_hash"] = None
    return [(STEP, key, step)]


def _invalidated(record: Record, get: Getter) -> list[Change]:
    body = record.body
    _batch, key, step = _step_copy(body, get, create=False)
    if step is None:
        return []  # a step with nothing recorded has no signature to invalidate
    for sig in step.get("signatures", []):
        if sig["record_id"] == body["signature_record_id"]:
            sig["valid"] = False
            sig["invalidated_by"] = record.id
            sig["invalidated_reason"] = body["reason"]
            sig["invalidated_cause"] = body.get("cause", "correction")
    return [(STEP, key, step)]


def _step_copy(body: Mapping[str, Any], get: Getter, *,
               create: bool) -> tuple[Mapping[str, Any], str, dict[str, Any] | None]:
    """The batch a record is about, its step document's key, and a copy of that document the handler may change.

    Documents ``get`` returns are shared and never changed. ``create``: a step
    with nothing recorded yet gets an empty document (otherwise it is None).
    """
    batch = get(BATCH, body["batch_id"])
    if batch is None:
        raise DirectoryConflict(f"no batch {body['batch_id']}")
    if batch.get("cancelled"):  # signed or corrected offline, before this terminal heard of the cancellation
        raise DirectoryConflict(cancelled_note(batch))
    key = step_key(batch["batch_id"], body["step_id"])
    found = get(STEP, key)
    if found is not None:
        return batch, key, _copy(found)
    return batch, key, ({"signatures": [], "corrections": []} if create else None)


def _copy(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists, scalars): what copy.deepcopy does here, several times faster."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_HANDLERS = {
    "recipe.registered": _recipe_registered,
    "batch.created": _batch_created,
    "batch.cancelled": _batch_cancelled,
    "step.signed": _signed,
    "witness.signed": _signed,
    "step.corrected": _corrected,
    "signature.invalidated": _invalidated,
}


def meaning_of(text: str) -> Meaning:
    return Meaning(text)
