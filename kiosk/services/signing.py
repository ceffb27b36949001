"""Signing batch-record steps: sequencing, authority, content binding, continuity, witnesses.

Every check runs twice: when the sign dialog is prepared (so the person sees
the full manifestation and what credentials are needed) and again at the
moment of signing, inside the append transaction, against the state the
signature record is written onto (no other writer can change it before the
commit). At that moment the rules that depend only on the account, the batch
and the inputs keep the dialog's verdict when the transaction reads an account
and a batch equal to the dialog's (the same inputs give the same verdict); the
session- and time-dependent ones are always decided again. The step shows as
signed only after its record is durably committed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from kiosk import __version__
from kiosk.domain import batches as bx
from kiosk.domain.audit import actor as actor_body, target
from kiosk.domain.clock import Clock, format_ts, local_time, site_time
from kiosk.domain.directory import DirectoryConflict
from kiosk.domain.identity import InvalidText, check_text
from kiosk.domain.recipes import (DECIDING, InvalidValue, Meaning, Recipe, RecipeError, Step, as_recipe_writes,
                                  check_listing_order, check_values, describe_rule, describe_starters,
                                  normalize_values, parse_recipe_toml, unmet_requirements)
from kiosk.domain.session import components_required
from kiosk.services.auth import AuthService, UserView, typed_in
from kiosk.services.ports import ListingDirectory, DirectoryReader, RecordWriter
from kiosk.services.session import SessionService

CHANGED = "the step changed while the dialog was open; review it and sign again"


class SigningError(Exception):
    """A signature was refused; the message says why and what to do."""


class PasswordExposed(SigningError):
    """The signer's password was typed into what was to be signed: what is on screen must go."""


@dataclass(frozen=True)
class Manifestation:
    printed_name: str
    user_id: str
    role: str
    meaning: str
    signed_at: str      # UTC
    tz: str
    device: str

    @property
    def site_time(self) -> str:
        """The signing time in the site zone, as the dialog shows it (the record keeps UTC and the zone)."""
        return site_time(self.signed_at, self.tz)

    def body(self) -> dict[str, str]:
        return {"printed_name": self.printed_name, "user_id": self.user_id, "role": self.role,
                "meaning": self.meaning, "signed_at": self.signed_at, "tz": self.tz, "device": self.device}


@dataclass(frozen=True)
class Prepared:
    """What the sign dialog shows before anyone types a password."""

    batch_id: str
    step_id: str
    meaning: str
    values: tuple[tuple[str, str], ...]
    units: tuple[tuple[str, str], ...]
    content_hash: str
    components: tuple[str, ...]
    preview: Manifestation | None       # None for a witness: the signer is not known yet
    witness: bool = False
    comment: str = ""
    deviation_ref: str = ""
    out_of_range: tuple[str, ...] = ()
    # What the directory-dependent rules were judged against (see _Basis); not part of what is shown or signed.
    basis: "_Basis | None" = field(default=None, compare=False, repr=False)

    def inputs(self) -> tuple:
        """Everything the person asked to sign, as the rules received it."""
        return (self.batch_id, self.step_id, self.meaning, self.values, self.units, self.content_hash,
                self.witness, self.comment, self.deviation_ref, self.out_of_range)


@dataclass(frozen=True)
class _Basis:
    """The documents a verdict was reached on, so the signing transaction can tell whether it still holds.

    Every signing rule is a function of the signer's account, the batch (its
    recipe is fixed by the batch's recipe hash), the inputs, the session and
    the clock. When the transaction reads an account and a batch equal to
    these, for the same inputs, every rule that depends on the directory has
    the same outcome as when the dialog was prepared; only the session- and
    time-dependent ones are decided again. Any difference, however small,
    sends the signature through every rule again. Equality, not a version
    counter: it cannot be fooled by a write that a counter misses.
    """

    owner: UserView
    pairs: tuple[tuple[str, str], ...]  # the batch's documents (batches.documents)
    docs: tuple                         # ... as read: the batch's own, then each step's (None: nothing recorded)
    roles: tuple[str, ...]              # the roles the step's rule lets sign this meaning
    inputs: tuple

    def holds(self, prepared: "Prepared", owner: UserView, docs: list) -> bool:
        return (self.inputs == prepared.inputs() and not prepared.witness and owner == self.owner
                and len(docs) == len(self.docs) and all(a is b or a == b for a, b in zip(docs, self.docs)))


def read_recipe_file(path: Path) -> Recipe:
    """A recipe file, validated; every fault (unreadable, not UTF-8, not a valid recipe) is a RecipeError."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot be read ({exc.strerror})") from None
    recipe = parse_recipe_toml(text, str(path))
    check_listing_order(recipe, str(path))
    return recipe


_SHOWN = 5  # batch ids a refusal names when several hold the text typed


def _has_roles(user: UserView) -> str:
    return f"{user.printed_name} has the {' and '.join(user.roles)} role{'s' if len(user.roles) > 1 else ''}"


def _decisions_after(recipe: Recipe, batch: Mapping[str, Any], step_id: str,
                     why: Callable[[dict[str, Any]], str]) -> list[tuple[str, dict[str, Any], str]]:
    """The standing Approved and Released signatures of the steps that depend on ``step_id``, each with why it is
    taken back: what they decided on has changed (a correction) or was not so (a withdrawal)."""
    return [(later.id, sig, why(sig)) for later in recipe.dependents(step_id)
            for sig in bx.valid_signatures(batch, later.id) if Meaning(sig["meaning"]) in DECIDING]


def _invalidations(who: dict[str, str], batch_id: str, taken_back: list[tuple[str, dict[str, Any], str]],
                   cause: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """One signature.invalidated record per (step, signature, reason); without ``cause``, a correction's."""
    return [("signature.invalidated", {
        "actor": who, "target": target("signature", sig["record_id"]), "batch_id": batch_id, "step_id": sig_step,
        "signature_record_id": sig["record_id"], "reason": why, **({"cause": cause} if cause else {}),
    }) for sig_step, sig, why in taken_back]


def _made_from(batch: Mapping[str, Any], recipe: Recipe) -> bool:
    return batch["recipe_key"] == recipe.key and batch.get("recipe_hash", recipe.content_hash) == recipe.content_hash


@dataclass(frozen=True)
class StepView:
    step_id: str
    title: str
    status: str
    signatures: tuple[dict, ...]
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NextSignature:
    """The signature a step takes next, as the person logged in can give it (or not)."""

    meaning: str
    rule: str            # who signs it, in the recipe's words
    second_person: bool  # given by someone other than the session owner, in their own name (the witness dialog)
    refusal: str = ""    # why the session owner cannot give it ('' when they can)


@dataclass(frozen=True)
class BatchSummary:
    status: str  # batches.BATCH_STATUSES
    done_steps: int
    total_steps: int


class SigningService:
    def __init__(self, store: RecordWriter, directory: ListingDirectory, auth: AuthService, session: SessionService,
                 clock: Clock, *, clock_suspect=lambda reader=None: False, refuse_on_bad_clock: bool = True) -> None:
        self.store = store
        self.directory = directory
        self.auth = auth
        self.session = session
        self.clock = clock
        self.clock_suspect = clock_suspect
        self.refuse_on_bad_clock = refuse_on_bad_clock
        # Parsed recipes by key. A registered recipe never changes (a different
        # content needs a new version), and each use is checked against the
        # content hash its batch was created with.
        self._recipes: dict[str, Recipe] = {}
        # Each batch's recipe as last read, so its documents can be read in one go (checked against the batch's).
        self._batch_recipes: dict[str, Recipe] = {}

    # -- recipes and batches ---------------------------------------------
    def register_recipe_file(self, path: Path, actor: dict[str, str], reason: str) -> Recipe:
        reason = self._reason(reason, "give a reason (at least 4 characters); it is recorded with the recipe")
        recipe = read_recipe_file(path)
        existing = self.directory.get(bx.RECIPE, recipe.key)
        if existing is not None:
            if existing["content_hash"] != recipe.content_hash:
                raise RecipeError(f"{path}: {recipe.key} is registered with other content; raise the version")
            return recipe
        self._append([("recipe.registered", {"actor": actor, "target": target("recipe", recipe.key),
                                              "key": recipe.key, "content_hash": recipe.content_hash,
                                              "recipe": recipe.source, "reason": reason})])
        return recipe

    def recipes(self) -> list[dict[str, Any]]:
        return list(self.directory.all(bx.RECIPE))

    def superseded(self) -> dict[str, str]:
        """Registered recipe versions a higher version in effect replaces: key -> the current version's key."""
        return bx.superseded(self.recipes(), self.today())

    def pending(self) -> dict[str, str]:
        """Registered recipe versions not in effect yet: key -> the site-local date they take effect."""
        return bx.pending(self.recipes(), self.today())

    def today(self) -> str:
        """The site's date now (a recipe takes effect at the start of a day, site time)."""
        return local_time(self.clock.now(), self.clock.zone).date().isoformat()

    def recipe(self, key: str) -> Recipe:
        return self._recipe_of(self.directory, key)

    def _recipe_of(self, reader: DirectoryReader, key: str, content_hash: str | None = None) -> Recipe:
        recipe = self._recipes.get(key)
        if recipe is not None and (content_hash is None or recipe.content_hash == content_hash):
            return recipe
        doc = reader.get(bx.RECIPE, key)
        if doc is None:
            raise SigningError(f"recipe {key} is not registered on this kiosk")
        recipe = bx.recipe_from_doc(doc)
        if content_hash is not None and recipe.content_hash != content_hash:
            raise SigningError(f"recipe {key} on this kiosk is not the version this batch was started with")
        self._recipes[key] = recipe
        return recipe

    def create_batch(self, batch_id: str, recipe_key: str) -> dict[str, Any]:
        user = self.session.owner()
        role = self.session.session.role or ""
        try:
            bid = check_text("batch id", batch_id, 40)
        except InvalidText as exc:
            raise SigningError(str(exc)) from None
        recipe = self.recipe(recipe_key)
        if not recipe.may_start(role):
            raise SigningError(f"batches of {recipe.key} are started by {describe_starters(recipe)}, "
                               f"not by {role or 'this session'}")
        current = self.superseded().get(recipe.key)
        if current is not None:
            raise SigningError(f"{recipe.key} is superseded by {current}; start the batch from the current version")
        waiting = self.pending().get(recipe.key)
        if waiting is not None:
            raise SigningError(f"{recipe.key} takes effect on {waiting} (site time); until then, start the batch "
                               "from the version in effect")
        same = bid if self.directory.get(bx.BATCH, bid) is not None else next(
            iter(bx.ids_alike(self.directory.batch_ids(), bid)), None)
        if same is not None:
            raise SigningError(f"batch {same} already exists" + ("" if same == bid else
                                                                   " (batch ids are compared without case)"))
        self._append([("batch.created", {"actor": actor_body(user.user_id, user.printed_name, role),
                                          "target": target("batch", bid), "batch_id": bid,
                                          "recipe_key": recipe.key, "recipe_hash": recipe.content_hash,
                                          "new": {"recipe": recipe.key}})])
        return self.batch(bid)

    def cancel_batch(self, batch_id: str, reason: str, user_text: str, password: str,
                     totp_code: str | None) -> dict[str, Any]:
        """Withdraw a batch started in error or abandoned: a supervisor or QA, full credentials now, a reason.

        Batch ids are never reused, so without this a batch started by mistake
        would wait on the worklist for ever. Its records stay; nothing more is
        recorded on it. A released batch is not cancelled: its disposition is
        made. Returns the record's body; credentials that fail raise AuthError (AuthService.authorise).
        """
        reason = self._reason(reason, "give a reason for cancelling the batch (at least 4 characters)")
        self._cancellable(self.directory, batch_id)  # before any credential is checked
        result = self.auth.authorise(user_text, password, totp_code, reason, purpose="cancel_batch",
                                     where="the reason for cancelling the batch")
        person = result.user
        assert person is not None
        self._ready_to_sign(person)
        role = next((r for r in bx.CANCEL_ROLES if r in person.roles), None)
        if role is None:
            raise SigningError(f"a batch is cancelled by a supervisor or QA; {person.printed_name} is neither")
        auth = result.auth_body()

        def build(reader: DirectoryReader) -> list[tuple[str, dict[str, Any]]]:
            status = self._cancellable(reader, batch_id)  # again, against the state it is written onto
            return [("batch.cancelled", {
                "actor": actor_body(person.user_id, person.printed_name, role), "target": target("batch", batch_id),
                "batch_id": batch_id, "reason": reason, "auth": auth,
                "old": {"status": status}, "new": {"status": "cancelled"}})]

        [(_type, body)] = self._append_checked(build)
        return body

    def _cancellable(self, reader: DirectoryReader, batch_id: str) -> str:
        """The batch's status, if it may be cancelled."""
        recipe, batch = self._batch_of(reader, batch_id)
        self._refuse_cancelled(batch)
        status = bx.batch_status(recipe, batch)
        if status == "released":
            raise SigningError(f"batch {batch_id} is released; a released batch is not cancelled")
        return status

    # -- batches in worklist order: a page at a time, as a terminal keeps years of them ------------------
    def batch_count(self) -> int:
        return self.directory.count(bx.BATCH)

    def newest_batches(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """One page of batches' own documents (recipe, title, start), newest first, then by id."""
        return self.directory.newest_batches(offset, limit)

    def batch_position(self, batch_id: str) -> int:
        """Where the batch stands in newest_batches' order (its page starts at or before it)."""
        doc = self.directory.get(bx.BATCH, batch_id)
        if doc is None:
            raise SigningError(f"no batch {batch_id}")
        return self.directory.batches_before(doc)

    def find_batch(self, text: str) -> str:
        """The batch a scanned or typed id names: the id itself, then without case, then the one id that holds it.

        The refusal never repeats what was typed: it may be anything, a
        password typed into the wrong field included.
        """
        wanted = text.strip()
        if not wanted:
            raise SigningError("scan or type a batch id")
        if self.directory.get(bx.BATCH, wanted) is not None:
            return wanted
        folded = wanted.casefold()
        same: list[str] = []  # the id in another case (several only where offline terminals each made one)
        holding: list[str] = []  # the first few ids holding the text, in order, of ``count``
        count = 0
        for bid in self.directory.batch_ids():  # streamed: ids only, never every document
            other = bid.casefold()
            if folded in other:
                count += 1
                bisect.insort(holding, bid)
                del holding[_SHOWN:]
                if other == folded:
                    same.append(bid)
        if same:
            count, holding = len(same), sorted(same)
        if count == 1:
            return holding[0]
        if not count:
            raise SigningError("no batch on this terminal has that id; a batch started on another terminal is "
                               "here after its next sync")
        shown = ", ".join(holding[:_SHOWN]) + (f" and {count - _SHOWN} more" if count > _SHOWN else "")
        raise SigningError(f"{count} batches hold that text: {shown}. Type more of the id.")

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch record (batches.view) as stored; its documents are shared with other readers, so never
        to be changed."""
        return self._batch_of(self.directory, batch_id)[1]

    def _batch_of(self, reader: DirectoryReader, batch_id: str) -> tuple[Recipe, dict[str, Any]]:
        """The batch's recipe and its record (batches.view)."""
        recipe, _pairs, docs = self._batch_documents(reader, batch_id)
        return recipe, bx.view(recipe, docs)

    def _batch_documents(self, reader: DirectoryReader,
                         batch_id: str) -> tuple[Recipe, tuple[tuple[str, str], ...], list]:
        """The batch's recipe and its documents (batches.documents), as read.

        Read with get_many: on a kiosk that goes through the write connection's
        decoded documents (LocalDirectory.get_many), so the dialog, the signing
        transaction and the step list share one decoding of each document.
        """
        recipe = self._batch_recipes.get(batch_id)
        if recipe is not None:  # as last time, most likely: then one read does
            pairs = bx.documents(batch_id, recipe)
            docs = reader.get_many(pairs)
            if docs[0] is not None and _made_from(docs[0], recipe):
                return recipe, pairs, docs
        [doc] = reader.get_many([(bx.BATCH, batch_id)])
        if doc is None:
            raise SigningError(f"no batch {batch_id}")
        recipe = self._recipe_of(reader, doc["recipe_key"], doc.get("recipe_hash"))
        pairs = bx.documents(batch_id, recipe)
        docs = reader.get_many(pairs)
        if docs[0] is None or not _made_from(docs[0], recipe):
            raise SigningError(f"batch {batch_id} was replaced while it was read (a directory pull); open it again")
        if len(self._batch_recipes) >= 256:
            self._batch_recipes.clear()
        self._batch_recipes[batch_id] = recipe
        return recipe, pairs, docs

    def steps(self, batch_id: str) -> list[StepView]:
        recipe, batch = self._batch_of(self.directory, batch_id)
        out = []
        statuses = bx.step_statuses(recipe, batch)
        for step in recipe.steps:
            state = batch["steps"].get(step.id) or {}
            out.append(StepView(step.id, step.title, statuses[step.id],
                                tuple(state.get("signatures", ())), dict(state.get("values", {}))))
        return out

    def summary(self, batch_id: str) -> BatchSummary:
        recipe, batch = self._batch_of(self.directory, batch_id)
        statuses = bx.step_statuses(recipe, batch)
        return BatchSummary(bx.batch_status(recipe, batch, statuses),
                            sum(1 for s in statuses.values() if s == "done"), len(statuses))

    # -- signing ---------------------------------------------------------
    def next_signature(self, batch_id: str, step_id: str) -> NextSignature | None:
        """What the step takes next (None: nothing, all signed or the batch cancelled), so a screen offers only
        a signature that can be given: its signatures follow the order its recipe lists them."""
        owner = self.session.owner()
        recipe, batch = self._batch_of(self.directory, batch_id)
        step = recipe.step(step_id)
        if step is None or bx.cancelled_note(batch):
            return None
        signed = bx.valid_signatures(batch, step.id)
        rule = step.next_rule(s["meaning"] for s in signed)
        if rule is None:
            return None
        # Someone who signed what this one must differ from has a second person sign it.
        mine = {s["meaning"] for s in signed if s["user_id"] == owner.user_id}
        second = any(m.value in mine for m in rule.distinct_from)
        refusal = ""
        if not second:
            try:
                self._role_for(owner, rule.roles, rule.meaning.value)
            except SigningError as exc:
                refusal = str(exc)
        if not refusal:
            statuses = bx.step_statuses(recipe, batch)
            if statuses[step.id] == "locked":
                refusal = self._waiting(recipe, statuses, step)
        return NextSignature(rule.meaning.value, describe_rule(step, rule), second, refusal)

    def prepare(self, batch_id: str, step_id: str, meaning: str, values: Mapping[str, str], *,
                witness: bool = False, comment: str = "", deviation_ref: str = "") -> Prepared:
        """Check everything that can be checked before credentials; returns what the dialog shows."""
        owner = self.session.owner()
        return self._evaluate(self.directory, owner, batch_id, step_id, meaning, values, witness=witness,
                              comment=comment, deviation_ref=deviation_ref)[0]

    def _evaluate(self, reader: DirectoryReader, owner: UserView, batch_id: str, step_id: str, meaning: str,
                  values: Mapping[str, str], *, witness: bool, comment: str,
                  deviation_ref: str) -> tuple[Prepared, dict[str, Any]]:
        """Every signing rule, against the state ``reader`` sees; returns what would be signed and the batch."""
        self._ready_to_sign(owner)
        recipe, pairs, docs = self._batch_documents(reader, batch_id)
        batch = bx.view(recipe, docs)
        self._refuse_cancelled(batch)
        step = recipe.step(step_id)
        if step is None:
            raise SigningError(f"step {step_id} is not in {recipe.key}")
        try:
            wanted = Meaning(meaning)
        except ValueError:
            raise SigningError(f"{meaning!r} is not a signature meaning") from None
        rule = step.rule(wanted)
        if rule is None:
            raise SigningError(f"step '{step.title}' does not take a {wanted.value} signature")
        # The owner's role is decided first: values typed for a meaning they cannot sign would be typed in vain.
        role = "" if witness else self._role_for(owner, rule.roles, wanted.value)
        statuses = bx.step_statuses(recipe, batch)
        if statuses[step.id] == "locked":
            raise SigningError(self._waiting(recipe, statuses, step))
        signed = bx.valid_signatures(batch, step.id)
        if any(s["meaning"] == wanted.value for s in signed):
            raise SigningError(f"{wanted.value} is already signed for this step")
        due = step.next_rule(s["meaning"] for s in signed)  # not None: ``wanted`` itself is not signed yet
        if due is not None and due.meaning != wanted:
            first = due.meaning.value
            raise SigningError(f"{wanted.value} follows {first} on this step, and {first} is not signed yet: "
                               "a step's signatures are given in the order its recipe lists them (21 CFR 11.10(f))")
        self._check_clock(reader)
        clean = self._values(step, values)
        findings = check_values(step, clean)
        errors = [f.message for f in findings if not f.out_of_range]
        if errors:
            raise SigningError("; ".join(errors))
        if rule.requires:
            unmet = unmet_requirements(step, rule, clean)
            if unmet:
                raise SigningError("; ".join(unmet) + " (a rule of the recipe)")
        out_of_range = tuple(f.message for f in findings if f.out_of_range)
        comment = self._text("comment", comment) if comment.strip() else ""
        deviation_ref = self._text("deviation reference", deviation_ref) if deviation_ref.strip() else ""
        if out_of_range and not (comment and deviation_ref):
            raise SigningError("out of range: " + "; ".join(out_of_range) +
                               ". Enter a comment and a deviation reference before signing.")
        units = {f.name: f.unit for f in step.fields if f.name in clean}
        chash = bx.content_hash(batch_id, step.id, recipe.key, recipe.content_hash, clean, units)
        if signed and signed[0]["content_hash"] != chash:
            raise SigningError("the values differ from what was already signed for this step; "
                               "record a correction with a reason instead")
        recorded = (batch["steps"].get(step.id) or {}).get("values")
        if not signed and recorded and recorded != clean:
            # Signed again after its signatures were invalidated: over the recorded values, or a value would
            # change with no reason recorded (only a correction changes a recorded value).
            raise SigningError("the values differ from those recorded for this step (the last correction or "
                               "signature); sign those, or record a correction with a reason")
        if witness:
            components: tuple[str, ...] = ("user_id", "password", "totp")
            preview = None
        else:
            self._check_distinct(signed, rule, owner)
            components = components_required(self.session.session, owner.user_id, self.session.policy,
                                              owner.totp_enrolled)
            preview = self._manifestation(owner, role, wanted.value)
        prepared = Prepared(batch_id, step.id, wanted.value, tuple(sorted(clean.items())),
                            tuple(sorted(units.items())), chash, components, preview, witness, comment,
                            deviation_ref, out_of_range)
        if not witness:
            # Still being built, never seen by anyone: the basis names the inputs just set.
            object.__setattr__(prepared, "basis", _Basis(owner, pairs, tuple(docs), tuple(rule.roles),
                                                         prepared.inputs()))
        return prepared, batch

    def _judge_again(self, reader: DirectoryReader, owner: UserView,
                     prepared: Prepared) -> tuple[Prepared, tuple[str, ...], Manifestation, dict[str, Any]]:
        """Every rule once more, against the state ``reader`` sees, for what ``prepared`` shows.

        Returns what is to be signed (as judged now), the components it needs
        now, its manifestation as of now, and the batch (its own document's
        fields at least: what the signature names). When the account and
        the batch are unchanged since the dialog was prepared (see _Basis), the
        directory-dependent verdict stands and only the session- and
        time-dependent rules are decided again.
        """
        self._ready_to_sign(owner)
        basis = prepared.basis
        if basis is not None and basis.holds(prepared, owner, reader.get_many(basis.pairs)):
            self._check_clock(reader)
            components = components_required(self.session.session, owner.user_id, self.session.policy,
                                              owner.totp_enrolled)
            role = self._role_for(owner, basis.roles, prepared.meaning)
            return prepared, components, self._manifestation(owner, role, prepared.meaning), basis.docs[0]
        again, batch = self._evaluate(reader, owner, prepared.batch_id, prepared.step_id, prepared.meaning,
                                      dict(prepared.values), witness=False, comment=prepared.comment,
                                      deviation_ref=prepared.deviation_ref)
        if again.content_hash != prepared.content_hash:
            raise SigningError(CHANGED)
        assert again.preview is not None
        return again, again.components, again.preview, batch

    def sign(self, prepared: Prepared, password: str, user_text: str | None = None,
             totp_code: str | None = None) -> dict[str, Any]:
        """The session owner signs. Returns the signature as stored (after the durable commit)."""
        if prepared.witness:
            raise SigningError("a witness signs with witness(), with their own credentials")
        # The owner's account is read (and checked) by authenticate, and again in the transaction.
        owner_id = self.session.owner_id()
        if user_text is not None and user_text.strip():
            from kiosk.domain.identity import InvalidUserId, normalize_user_id

            try:
                claimed = normalize_user_id(user_text)
            except InvalidUserId:
                claimed = None
            if claimed != owner_id:
                # Another account is named; what matches no account may be a password typed in the wrong field.
                other = repr(claimed) if claimed and self.auth.user(claimed) else self.auth.unknown_identity(user_text)
                self.auth.raise_alert("sign.other_identity", "critical",
                                      f"attempt to sign as {other} in the session of {owner_id!r}",
                                      target("user", owner_id))
                raise SigningError("you can only sign as yourself; the other person must sign with the witness dialog")
        needs_totp = "totp" in prepared.components
        result = self.auth.authenticate(owner_id, password, totp_code, require_totp=needs_totp, purpose="sign")
        if not result.ok:
            self.session.activity()
            raise SigningError(result.message)
        assert result.user is not None
        self._refuse_exposed(password, prepared, result.user, owner_id)

        def build(reader: DirectoryReader) -> list[tuple[str, dict[str, Any]]]:
            # Inside the append transaction: the session owner, every rule and the content hash once more,
            # against the state this record is written onto.
            signer = self.session.owner(reader)
            if signer.user_id != owner_id:
                raise SigningError(CHANGED)
            judged, components, manifestation, batch = self._judge_again(reader, signer, prepared)
            if components != prepared.components:
                raise SigningError(CHANGED)
            # Its time is the time of signing (now, in the transaction), not of preparing.
            return [("step.signed", self._signature_body(judged, batch, manifestation, result.auth_body()))]

        items = self._append_checked(build)
        self.session.signed()
        return {"record_type": items[0][0], **items[0][1]}

    def witness(self, prepared: Prepared, user_text: str, password: str, totp_code: str | None) -> dict[str, Any]:
        """A second person signs with their own full credentials; never the session owner."""
        owner = self.session.owner()
        result = self.auth.authenticate(user_text, password, totp_code, require_totp=True, purpose="witness")
        if not result.ok:
            raise SigningError(result.message)
        person = result.user
        assert person is not None
        self._refuse_exposed(password, prepared, person, owner.user_id)
        self._ready_to_sign(person)
        if person.user_id == owner.user_id:
            raise SigningError("a witness must be a different person from the one logged in")

        def build(reader: DirectoryReader) -> list[tuple[str, dict[str, Any]]]:
            # Inside the append transaction, against the state this record is written onto.
            current = self.session.owner(reader)
            if current.user_id != owner.user_id:
                raise SigningError(CHANGED)
            witness_now = self.auth.user(person.user_id, reader)
            if witness_now is None or witness_now.status != "active":
                raise SigningError(f"{person.printed_name}'s account is no longer active")
            self._ready_to_sign(witness_now)
            recipe, batch = self._batch_of(reader, prepared.batch_id)
            step = recipe.step(prepared.step_id)
            rule = step.rule(Meaning(prepared.meaning)) if step else None
            if rule is None:
                raise SigningError("that signature is not part of this step")
            role = self._role_for(witness_now, rule.roles, prepared.meaning)
            self._check_distinct(bx.valid_signatures(batch, prepared.step_id), rule, witness_now)
            again, batch = self._evaluate(reader, current, prepared.batch_id, prepared.step_id, prepared.meaning,
                                          dict(prepared.values), witness=True, comment=prepared.comment,
                                          deviation_ref=prepared.deviation_ref)
            if again.content_hash != prepared.content_hash:
                raise SigningError(CHANGED)
            man = self._manifestation(witness_now, role, prepared.meaning)
            return [("witness.signed", self._signature_body(again, batch, man, result.auth_body()))]

        items = self._append_checked(build)
        return {"record_type": items[0][0], **items[0][1]}

    def correct(self, batch_id: str, step_id: str, values: Mapping[str, str], reason: str) -> None:
        """Change entered values: a new record with old, new and reason; earlier signatures are invalidated."""
        owner = self.session.owner()
        recipe, batch = self._batch_of(self.directory, batch_id)
        self._refuse_cancelled(batch)
        step = recipe.step(step_id)
        if step is None:
            raise SigningError(f"step {step_id} is not in {recipe.key}")
        if not step.fields:
            raise SigningError(f"'{step.title}' records no values, so there is nothing to correct")
        role = self._recording_role(owner, step)
        reason = self._reason(reason, "give a reason for the correction (at least 4 characters)")
        state = batch["steps"].get(step_id) or {}
        if not state.get("signatures") and not state.get("corrections"):
            raise SigningError("nothing is recorded for this step yet to correct; enter the values and sign it")
        old = dict(state.get("values", {}))
        new = self._values(step, values)
        if old == new:
            raise SigningError("these are the values already recorded; change a value first, then record the correction")
        errors = [f.message for f in check_values(step, new) if not f.out_of_range]
        if errors:
            raise SigningError("; ".join(errors))
        if self.auth.is_own_password(owner.user_id, [*new.values(), reason]):
            self._exposed(owner, owner.user_id, batch_id, step_id, "Correction not recorded")
        who = actor_body(owner.user_id, owner.printed_name, role)
        items: list[tuple[str, dict[str, Any]]] = [("step.corrected", {
            "actor": who, "target": target("step", f"{batch_id}/{step_id}"), "batch_id": batch_id,
            "step_id": step_id, "old": old, "new": new, "reason": reason,
            "supersedes": state.get("content_hash"),
        })]
        taken_back = [(step_id, sig, f"content corrected: {reason}") for sig in bx.valid_signatures(batch, step_id)]
        taken_back += _decisions_after(recipe, batch, step_id,
                                       lambda sig: f"'{step.title}' corrected after this {sig['meaning']}: {reason}")
        self._append(items + _invalidations(who, batch_id, taken_back))

    def withdrawable(self, batch_id: str, step_id: str) -> str | None:
        """The meaning of the session owner's signature on the step they may withdraw (their last standing one)."""
        owner = self.session.owner()
        recipe, batch = self._batch_of(self.directory, batch_id)
        if bx.cancelled_note(batch) or recipe.step(step_id) is None:
            return None
        mine = [s["meaning"] for s in bx.valid_signatures(batch, step_id) if s["user_id"] == owner.user_id]
        return mine[-1] if mine else None

    def withdraw(self, batch_id: str, step_id: str, meaning: str, reason: str) -> list[str]:
        """Take back one's own signature given in error (the wrong batch, the wrong step) with a reason.

        Only the signer says their signature was given in error. What
        followed it on the step (a verification of it) and the approvals and
        releases that depend on the step are taken back with it, as a
        correction takes them back. Nothing is deleted: each is a
        signature.invalidated record, and the values stay recorded, to be
        signed again or corrected. Returns what was taken back, in order.
        """
        owner = self.session.owner()
        reason = self._reason(reason, "say why the signature was given in error (at least 4 characters)")
        if self.auth.is_own_password(owner.user_id, [reason]):
            self._exposed(owner, owner.user_id, batch_id, step_id, "Signature not withdrawn")

        def build(reader: DirectoryReader) -> list[tuple[str, dict[str, Any]]]:
            recipe, batch = self._batch_of(reader, batch_id)
            self._refuse_cancelled(batch)
            step = recipe.step(step_id)
            if step is None:
                raise SigningError(f"step {step_id} is not in {recipe.key}")
            standing = bx.valid_signatures(batch, step_id)
            mine = next((s for s in standing if s["meaning"] == meaning), None)
            if mine is None:
                raise SigningError(f"{meaning} on '{step.title}' is not signed, or has already been taken back")
            if mine["user_id"] != owner.user_id:
                raise SigningError(f"{meaning} on '{step.title}' was signed by {mine['name']}; only the person who "
                                   "signed it withdraws it as given in error")
            order = [r.meaning.value for r in step.signatures]
            after = [s for s in standing if order.index(s["meaning"]) > order.index(meaning)]
            what = f"{meaning} on '{step.title}' was withdrawn as signed in error"
            taken_back = [(step_id, mine, f"signed in error: {reason}")]
            taken_back += [(step_id, sig, f"{what}, and this {sig['meaning']} followed it: {reason}") for sig in after]
            taken_back += _decisions_after(recipe, batch, step_id,
                                           lambda sig: f"{what} after this {sig['meaning']}: {reason}")
            who = actor_body(owner.user_id, owner.printed_name, mine["role"])
            return _invalidations(who, batch_id, taken_back, cause="signed_in_error")

        return [f"{body['step_id']}: {body['reason']}" for _type, body in self._append_checked(build)]

    # -- helpers -----------------------------------------------------------
    def _refuse_exposed(self, password: str, prepared: Prepared, person: UserView, owner_id: str) -> None:
        """A password typed into a field by mistake would be signed into the permanent record, and the draft
        has already kept it on disk: refuse, clear that draft, and have the password changed."""
        if typed_in(password, [value for _name, value in prepared.values] + [prepared.comment, prepared.deviation_ref]):
            self._exposed(person, owner_id, prepared.batch_id, prepared.step_id, "Not signed")

    def _exposed(self, person: UserView, owner_id: str, batch_id: str, step_id: str, outcome: str) -> None:
        self.session.drafts.purge_draft(owner_id, batch_id, step_id)
        self.auth.password_exposed(person, f"a field of step {step_id} of batch {batch_id}")
        raise PasswordExposed(f"{outcome}: a value on this step is {person.printed_name}'s password. The values "
                              "typed were cleared and not recorded; the password must be changed before the next "
                              "signature. Then type the values again.")

    @staticmethod
    def _waiting(recipe: Recipe, statuses: Mapping[str, str], step: Step) -> str:
        """Why a step waiting for an earlier one is not signed yet."""
        missing = [p for p in step.prerequisites if statuses[p] != "done"]
        title = recipe.step(missing[0]).title if missing else "an earlier step"
        return f"sign '{title}' first: steps are signed in order (21 CFR 11.10(f))"

    @staticmethod
    def _refuse_cancelled(batch: Mapping[str, Any]) -> None:
        """Nothing more is recorded on a cancelled batch (the projector refuses it too, for records from elsewhere)."""
        note = bx.cancelled_note(batch)
        if note:
            raise SigningError(note)

    def _ready_to_sign(self, user: UserView) -> None:
        """11.100: no signature before the first-use certification, nor with an admin-issued password."""
        if not user.first_use_accepted:
            raise SigningError(f"{user.printed_name} must first accept the electronic-signature statement "
                               "(log in once to see it)")
        if user.must_change_password or self.auth.password_expired(user):
            raise SigningError(f"{user.printed_name} must change their password before signing (log in to change it)")

    def _check_clock(self, reader: DirectoryReader) -> None:
        if self.refuse_on_bad_clock and self.clock_suspect(reader):
            raise SigningError("the terminal clock is behind a time it already recorded; signing is paused. "
                               "Ask an admin to check the clock.")

    def _manifestation(self, user: UserView, role: str, meaning: str) -> Manifestation:
        return Manifestation(user.printed_name, user.user_id, role, meaning, format_ts(self.clock.now()),
                             self.clock.zone, self.store.chain.rpartition(":")[0])

    def _role_for(self, user: UserView, allowed: Iterable[str], meaning: str) -> str:
        allowed = tuple(allowed)
        role = self._role_among(user, allowed)
        if role is not None:
            return role
        in_session = self.session.session.owner == user.user_id
        advice = " Lock the terminal (F12) so that someone with that role logs in and signs it." if in_session else ""
        raise SigningError(f"{meaning} on this step is signed by {' or '.join(allowed)}; {_has_roles(user)}.{advice}")

    def _role_among(self, user: UserView, allowed: tuple[str, ...]) -> str | None:
        """The role ``user`` acts in, of ``allowed``: the session's own role first, when it is one of them."""
        session_role = self.session.session.role if self.session.session.owner == user.user_id else None
        if session_role in allowed and session_role in user.roles:
            return session_role
        return next((role for role in allowed if role in user.roles), None)

    def _recording_role(self, owner: UserView, step: Step) -> str:
        """The role the session owner enters or corrects ``step``'s values in (``Step.recording``). Anyone
        else's correction would take back the signatures of those who did the work."""
        allowed = step.recording.roles
        role = self._role_among(owner, allowed)
        if role is None:
            raise SigningError(f"the values of '{step.title}' are entered and corrected by {' or '.join(allowed)}, "
                               f"who sign it {step.recording.meaning.value}; {_has_roles(owner)}. Lock the "
                               "terminal (F12) so that someone with that role logs in and corrects them.")
        return role

    def may_enter_values(self, batch_id: str, step_id: str) -> bool:
        """Whether the step screen lets the person logged in type into the step's fields (see _recording_role)."""
        recipe, batch = self._batch_of(self.directory, batch_id)
        step = recipe.step(step_id)
        if step is None or not step.fields or bx.cancelled_note(batch):
            return False
        try:
            self._recording_role(self.session.owner(), step)
        except SigningError:
            return False
        return True

    def _check_distinct(self, signed: list[dict], rule, user: UserView) -> None:
        """``user`` is as read with the rest of the state being checked (in the transaction, when signing)."""
        for other in rule.distinct_from:
            if any(s["meaning"] == other.value and s["user_id"] == user.user_id for s in signed):
                raise SigningError(f"{rule.meaning.value} must be signed by a different person than {other.value}")
        if rule.qualification and rule.qualification not in user.qualifications:
            raise SigningError(f"this signature needs the training record '{rule.qualification}' (ask QA)")

    def _values(self, step: Step, values: Mapping[str, str]) -> dict[str, str]:
        """The values as they will be signed or recorded: normalized, answers in the recipe's spelling."""
        try:
            return as_recipe_writes(step, normalize_values(values))
        except InvalidValue as exc:
            raise SigningError(str(exc)) from None

    def _reason(self, text: str, too_short: str) -> str:
        """The reason recorded with a change: plain text, at least 4 characters."""
        try:
            reason = check_text("reason", text, 500)
        except InvalidText as exc:
            raise SigningError(str(exc)) from None
        if len(reason) < 4:
            raise SigningError(too_short)
        return reason

    def _text(self, name: str, text: str) -> str:
        try:
            return check_text(name, text, 200)
        except InvalidText as exc:
            raise SigningError(str(exc)) from None

    @staticmethod
    def _signature_body(p: Prepared, batch: Mapping[str, Any], man: Manifestation, auth: dict) -> dict[str, Any]:
        body: dict[str, Any] = {
            "actor": actor_body(man.user_id, man.printed_name, man.role),
            "target": target("step", f"{p.batch_id}/{p.step_id}"),
            "batch_id": p.batch_id, "step_id": p.step_id, "meaning": p.meaning,
            "manifestation": man.body(), "values": dict(p.values), "units": dict(p.units),
            "content_hash": p.content_hash, "recipe_key": batch["recipe_key"],
            "auth": auth, "new": dict(p.values),
            # The software that applied the rules: which signatures a defect found in a version could touch.
            "kiosk_version": __version__,
        }
        if p.comment:
            body["comment"] = p.comment
        if p.deviation_ref:
            body["deviation_ref"] = p.deviation_ref
        return body

    def _append(self, items) -> None:
        try:
            self.store.append_many(items)
        except DirectoryConflict as exc:
            raise SigningError(str(exc)) from None

    def _append_checked(self, build) -> list[tuple[str, dict[str, Any]]]:
        """Append what ``build`` decides inside the write transaction; returns the items written."""
        built: list[tuple[str, dict[str, Any]]] = []

        def decide(reader: DirectoryReader) -> list[tuple[str, dict[str, Any]]]:
            built[:] = build(reader)
            return built

        try:
            self.store.append_checked(decide)
        except DirectoryConflict as exc:
            raise SigningError(str(exc)) from None
        return built
