"""Master batch records: versioned recipes with ordered steps, fields, limits and signature rules.

A recipe is data an admin edits, so every mistake must come back as a message
naming the file, the step and the field. Limits are decimals compared
exactly (never floats): 7.2 must mean 7.2.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from kiosk.domain.canonical import CanonicalError, encode

ROLES = ("operator", "supervisor", "qa", "admin")
FIELD_TYPES = ("decimal", "integer", "text", "choice", "bool")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")


class Meaning(str, enum.Enum):
    PERFORMED = "Performed"
    VERIFIED = "Verified"
    WITNESSED = "Witnessed"
    REVIEWED = "Reviewed"
    APPROVED = "Approved"
    RELEASED = "Released"


# Meanings that decide on the work of the steps before them (a batch record approved, a batch released):
# a later correction of any of those steps takes them back.
DECIDING = frozenset({Meaning.APPROVED, Meaning.RELEASED})


class RecipeError(ValueError):
    """A recipe file is not valid; the message names file, step and field."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str
    unit: str = ""
    min: Decimal | None = None
    max: Decimal | None = None
    choices: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class SignatureRule:
    meaning: Meaning
    roles: tuple[str, ...]
    distinct_from: tuple[Meaning, ...] = ()
    qualification: str | None = None
    requires: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (field, values it may have) for this meaning


def describe_rule(step: "Step", rule: SignatureRule) -> str:
    """A signature rule in words, the same on the Recipes screen and in `kiosk admin recipes check`."""
    text = f"{rule.meaning.value} by {' or '.join(rule.roles)}"
    if rule.distinct_from:
        text += ", not the " + " or ".join(m.value for m in rule.distinct_from) + " signer"
    if rule.qualification:
        text += f", qualified for {rule.qualification}"
    for name, allowed in rule.requires:
        text += f", only with {step.label(name)} {' or '.join(allowed)}"
    return text


def describe_starters(recipe: "Recipe") -> str:
    return "any role" if set(recipe.start_roles) == set(ROLES) else " or ".join(recipe.start_roles)


def unmet_requirements(step: "Step", rule: SignatureRule, values: Mapping[str, str]) -> list[str]:
    """Why ``rule`` cannot be signed over ``values``; empty when it can.

    A recipe states what a meaning vouches for, e.g. Released only with
    Deviations none or closed: a release over an open deviation is what an
    inspector finds first, and a rule in the signed recipe holds on every
    terminal, where a habit does not.
    """
    problems = []
    for name, allowed in rule.requires:
        value = values.get(name, "")
        if value not in allowed:
            shown = f"'{value}'" if value else "empty"
            problems.append(f"{rule.meaning.value} needs {step.label(name)} to be {' or '.join(allowed)}; it is {shown}")
    return problems


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    instructions: str
    prerequisites: tuple[str, ...]
    fields: tuple[Field, ...]
    signatures: tuple[SignatureRule, ...]

    def rule(self, meaning: Meaning) -> SignatureRule | None:
        return next((r for r in self.signatures if r.meaning == meaning), None)

    def label(self, field_name: str) -> str:
        return next((f.label for f in self.fields if f.name == field_name), field_name)

    def next_rule(self, signed: Iterable[str]) -> SignatureRule | None:
        """The signature this step takes next (None when every one is signed).

        A step's signatures are given in the order its recipe lists them
        (11.10(f) covers the events within a step as well as the steps): a
        verification recorded before the work it verifies is what an inspector
        reads as a record written after the fact.
        """
        done = set(signed)
        return next((r for r in self.signatures if r.meaning.value not in done), None)

    @property
    def recording(self) -> SignatureRule:
        """The signature that records the step's values, listed first: its roles enter them, and correct them
        (11.10(g): altering a record takes the same authority as making it)."""
        return self.signatures[0]

    @cached_property
    def meanings(self) -> frozenset[str]:
        """The meanings this step needs before it is done (batch status is worked out for every step each time)."""
        return frozenset(r.meaning.value for r in self.signatures)


@dataclass(frozen=True)
class Recipe:
    id: str
    version: int
    title: str
    product: str
    steps: tuple[Step, ...]
    start_roles: tuple[str, ...] = ROLES  # who may start a batch of it
    content_hash: str = field(default="", compare=False)
    source: dict = field(default_factory=dict, compare=False, repr=False)
    effective_from: str | None = None  # the site-local date new batches may start from it (None: at once)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def may_start(self, role: str) -> bool:
        return role in self.start_roles

    def step(self, step_id: str) -> Step | None:
        return self._index.get(step_id)

    def dependents(self, step_id: str) -> tuple[Step, ...]:
        """The steps that need ``step_id`` done first, directly or through others, in recipe order."""
        needing = {step_id}
        out = []
        for step in self.steps:
            if needing.intersection(step.prerequisites):
                needing.add(step.id)
                out.append(step)
        return tuple(out)

    @cached_property
    def _index(self) -> dict[str, Step]:
        """Steps by id: the signing path looks steps up by id, and recipes can be long."""
        return {s.id: s for s in self.steps}


def _err(source: str, where: str, msg: str) -> RecipeError:
    return RecipeError(f"{source}: {where}: {msg}")


def _known(table: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise _err(source, where, f"unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _decimal(value: Any, source: str, where: str) -> Decimal:
    if isinstance(value, float) or not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _err(source, where, "write limits as strings, e.g. \"7.2\" (decimals are exact, floats are not)")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _err(source, where, f"{value!r} is not a number") from None


def parse_recipe_dict(data: Mapping[str, Any], source: str) -> Recipe:
    _known(data, {"id", "version", "title", "product", "start_roles", "effective_from", "steps"}, source, "recipe")
    for key in ("id", "version", "title", "steps"):
        if key not in data:
            raise _err(source, "recipe", f"missing {key!r}")
    rid = data["id"]
    if not isinstance(rid, str) or not _ID.match(rid):
        raise _err(source, "recipe id", "use lowercase letters, digits, '.', '_' or '-'")
    version = data["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _err(source, "version", "must be a positive integer")
    start_roles = tuple(_list_of(data.get("start_roles", list(ROLES)), str, source, "recipe", "start_roles"))
    if not start_roles or any(r not in ROLES for r in start_roles):
        raise _err(source, "start_roles", f"must be one or more of {', '.join(ROLES)}")
    effective_from = data.get("effective_from")
    if effective_from is not None and not _is_date(effective_from):
        raise _err(source, "effective_from", 'must be a date in quotes, e.g. effective_from = "2026-12-15": the day '
                                             "(site time) from which new batches start from this version")
    steps_raw = data["steps"]
    if not isinstance(steps_raw, list) or not steps_raw:
        raise _err(source, "steps", "a recipe needs at least one [[steps]] table")
    steps: list[Step] = []
    seen: set[str] = set()
    for index, raw in enumerate(steps_raw, start=1):
        where = f"step {index}"
        if not isinstance(raw, dict):
            raise _err(source, where, "must be a table")
        _known(raw, {"id", "title", "instructions", "after", "fields", "signatures"}, source, where)
        sid = raw.get("id")
        if not isinstance(sid, str) or not _ID.match(sid):
            raise _err(source, where, "needs an id of lowercase letters, digits, '.', '_' or '-'")
        where = f"step '{sid}'"
        if sid in seen:
            raise _err(source, where, "step ids must be unique")
        title = raw.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _err(source, where, "needs a title")
        after = raw.get("after", [steps[-1].id] if steps else [])
        if isinstance(after, str):
            after = [after]
        after = _list_of(after, str, source, where, "after")
        for pre in after:
            if pre not in seen:
                raise _err(source, where, f"prerequisite {pre!r} is not an earlier step (steps run in order; no cycles)")
        fields = tuple(_field(f, source, where) for f in _list_of(raw.get("fields", []), object, source, where,
                                                                  "fields"))
        if len({f.name for f in fields}) != len(fields):
            raise _err(source, where, "field names must be unique")
        sigs = tuple(_signature(s, source, where, fields)
                     for s in _list_of(raw.get("signatures", []), object, source, where, "signatures"))
        if not sigs:
            raise _err(source, where, "needs at least one [[steps.signatures]] (e.g. meaning = \"Performed\")")
        meanings = [s.meaning for s in sigs]
        if len(set(meanings)) != len(meanings):
            raise _err(source, where, "each meaning may appear once per step")
        for s in sigs:
            for other in s.distinct_from:
                if other not in meanings:
                    raise _err(source, where, f"{s.meaning.value} must differ from {other.value}, which this step does not have")
        steps.append(Step(sid, title.strip(), str(raw.get("instructions", "")).strip(), tuple(after), fields, sigs))
        seen.add(sid)
    source_doc = _jsonable(data, source)
    try:
        digest = hashlib.sha256(encode(source_doc)).hexdigest()
    except CanonicalError as exc:  # e.g. a decomposed accent, a 2**60 integer: it could not be signed
        raise _err(source, "recipe", f"cannot be stored as a signed record: {exc}") from None
    return Recipe(rid, version, str(data["title"]).strip(), str(data.get("product", "")).strip(), tuple(steps),
                  start_roles, digest, source_doc, effective_from)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _jsonable(value: Any, source: str) -> Any:
    """The recipe as it will be signed into its record: TOML's floats and dates have no place there."""
    if isinstance(value, dict):
        return {k: _jsonable(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, source) for v in value]
    if isinstance(value, float):
        raise _err(source, "recipe", "floats are not allowed in recipes; write decimals as strings")
    if isinstance(value, (dt.date, dt.time)):
        raise _err(source, "recipe", f"dates and times are not allowed in recipes; write {value} as a string")
    return value


def _list_of(value: Any, kind: type, source: str, where: str, what: str) -> list:
    """A TOML array of ``kind`` (a bare string counts as a one-item list where that reads naturally)."""
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise _err(source, where, f"{what} must be a list, e.g. {what} = [...]")
    return value


def _field(raw: Any, source: str, step_where: str) -> Field:
    if not isinstance(raw, dict):
        raise _err(source, step_where, "each field must be a table")
    name = raw.get("name")
    where = f"{step_where}, field '{name}'"
    _known(raw, {"name", "type", "label", "unit", "min", "max", "choices", "required"}, source, where)
    if not isinstance(name, str) or not _ID.match(name):
        raise _err(source, where, "needs a name of lowercase letters, digits, '.', '_' or '-'")
    ftype = raw.get("type", "text")
    if ftype not in FIELD_TYPES:
        raise _err(source, where, f"type {ftype!r} is unknown; allowed: {', '.join(FIELD_TYPES)}")
    lo = _decimal(raw["min"], source, where + " min") if "min" in raw else None
    hi = _decimal(raw["max"], source, where + " max") if "max" in raw else None
    if lo is not None and hi is not None and lo > hi:
        raise _err(source, where, f"min {lo} is above max {hi}")
    if (lo is not None or hi is not None) and ftype not in ("decimal", "integer"):
        raise _err(source, where, "limits apply to decimal and integer fields only")
    choices = tuple(_list_of(raw.get("choices", []), str, source, where, "choices"))
    if ftype == "choice" and not choices:
        raise _err(source, where, "a choice field needs choices = [...]")
    return Field(name, ftype, str(raw.get("label", name)), str(raw.get("unit", "")), lo, hi, choices,
                 bool(raw.get("required", True)))


def _meaning(value: Any, source: str, where: str) -> Meaning:
    try:
        return Meaning(value)
    except ValueError:
        raise _err(source, where, f"meaning {value!r} is unknown; allowed: {', '.join(m.value for m in Meaning)}") from None


def _signature(raw: Any, source: str, step_where: str, fields: tuple[Field, ...]) -> SignatureRule:
    if not isinstance(raw, dict):
        raise _err(source, step_where, "each signature must be a table")
    _known(raw, {"meaning", "roles", "distinct_from", "qualification", "requires"}, source, step_where + " signature")
    meaning = _meaning(raw.get("meaning"), source, step_where)
    where = f"{step_where}, signature '{meaning.value}'"
    roles = tuple(_list_of(raw.get("roles", []), str, source, where, "roles"))
    if not roles or any(r not in ROLES for r in roles):
        raise _err(source, where, f"roles must be one or more of {', '.join(ROLES)}")
    distinct = tuple(_meaning(m, source, where)
                     for m in _list_of(raw.get("distinct_from", []), object, source, where, "distinct_from"))
    qual = raw.get("qualification")
    requires = _requires(raw.get("requires", {}), fields, source, where)
    return SignatureRule(meaning, roles, distinct, str(qual) if qual else None, requires)


def _requires(raw: Any, fields: tuple[Field, ...], source: str, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``requires = { deviations = ["none", "closed"] }``: the values a choice or yes/no field must hold."""
    if not isinstance(raw, dict):
        raise _err(source, where, 'requires must be a table, e.g. requires = { deviations = ["none", "closed"] }')
    by_name = {f.name: f for f in fields}
    out = []
    for name, allowed in raw.items():
        f = by_name.get(name)
        if f is None or f.type not in ("choice", "bool"):
            raise _err(source, where, f"requires names {name!r}, which is not a choice or yes/no field of this step")
        allowed = tuple(_list_of([allowed] if isinstance(allowed, str) else allowed, str, source, where,
                                 f"requires.{name}"))
        possible = f.choices if f.type == "choice" else ("yes", "no")
        wrong = [v for v in allowed if v not in possible]
        if not allowed or wrong:
            raise _err(source, where, f"requires.{name} must list values of {f.label}: {', '.join(possible)}")
        out.append((name, allowed))
    return tuple(out)


def check_listing_order(recipe: Recipe, source: str) -> None:
    """A recipe about to be registered lists a second person's check after what it checks.

    Signatures are given in the order a step lists them, so ``Verified``
    (distinct from Performed) listed before ``Performed`` would be signed
    first. Only new files are held to it: a recipe already registered stays
    readable, as every record naming it must.
    """
    for step in recipe.steps:
        listed: set[Meaning] = set()
        for rule in step.signatures:
            for other in rule.distinct_from:
                if other not in listed:
                    raise _err(source, f"step '{step.id}'",
                               f"{rule.meaning.value} must differ from {other.value}, so list {other.value} before "
                               f"it (a step's signatures are given in the order they are listed)")
            listed.add(rule.meaning)


def parse_recipe_toml(text: str, source: str) -> Recipe:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{source}: not valid TOML: {exc}") from None
    return parse_recipe_dict(data, source)


class InvalidValue(ValueError):
    """A typed value holds a character that cannot be signed or shown faithfully."""


_REFUSED_IN_VALUES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def normalize_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Values as they will be signed: NFC, trimmed, empty ones dropped.

    NFC first, so an accent typed as two code points signs like the same
    text typed as one. Control and format characters (escape sequences, bidi
    overrides) and lone surrogates are refused: the signed text must be what
    the person saw on screen, and canonical JSON cannot hold a lone surrogate.
    """
    clean: dict[str, str] = {}
    for key, value in values.items():
        text = unicodedata.normalize("NFC", str(value)).strip()
        if not text:
            continue
        bad = next((ch for ch in text if unicodedata.category(ch) in _REFUSED_IN_VALUES), None)
        if bad is not None:
            raise InvalidValue(f"{key}: contains a character that cannot be signed (U+{ord(bad):04X}); "
                               "type the value again")
        clean[key] = text
    return clean


def as_recipe_writes(step: Step, values: Mapping[str, str]) -> dict[str, str]:
    """Answers to yes/no and choice fields in the recipe's own spelling: "Yes" typed with a gloved finger on
    shift is the recipe's "yes", and "Closed" its "closed" (unless two of its choices differ only in case).
    What is signed, and shown in the sign dialog, then reads as the recipe does; anything else is left as
    typed, for ``check_values`` to judge."""
    spelled = dict(values)
    for f in step.fields:
        raw = spelled.get(f.name)
        options = f.choices if f.type == "choice" else ("yes", "no") if f.type == "bool" else ()
        if raw is None or not options or raw in options:
            continue
        alike = [option for option in options if option.casefold() == raw.casefold()]
        if len(alike) == 1:
            spelled[f.name] = alike[0]
    return spelled


def describe_changes(step: Step, old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """What a correction changed, field by field, as the step names and shows its values: "Net weight:
    1.500 kg → 1.501 kg" (the step screen and the printed batch record say it the same way)."""
    def shown(value: str | None, unit: str) -> str:
        return f"{value} {unit}".strip() if value else "(empty)"

    labels = {f.name: (f.label, f.unit) for f in step.fields}
    names = [f.name for f in step.fields] + sorted((set(old) | set(new)) - set(labels))
    parts = []
    for name in names:
        if old.get(name) != new.get(name):
            label, unit = labels.get(name, (name, ""))
            parts.append(f"{label}: {shown(old.get(name), unit)} → {shown(new.get(name), unit)}")
    return "; ".join(parts) or "no value changed"


def _is_number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


@dataclass(frozen=True)
class Finding:
    field: str
    message: str
    out_of_range: bool


def check_values(step: Step, values: Mapping[str, str]) -> list[Finding]:
    """Type errors and missing values (must be fixed) and out-of-range values (need a deviation reference)."""
    findings: list[Finding] = []
    for f in step.fields:
        raw = (values.get(f.name) or "").strip()
        if not raw:
            if f.required:
                findings.append(Finding(f.name, f"{f.label}: enter a value", False))
            continue
        if f.type in ("decimal", "integer"):
            try:
                number = Decimal(raw)
                if not number.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                point = raw.replace(",", ".")
                hint = f"; write decimals with a point: {point}" if "," in raw and _is_number(point) else ""
                findings.append(Finding(f.name, f"{f.label}: {raw!r} is not a number{hint}", False))
                continue
            if f.type == "integer" and number != number.to_integral_value():
                findings.append(Finding(f.name, f"{f.label}: enter a whole number", False))
                continue
            if (f.min is not None and number < f.min) or (f.max is not None and number > f.max):
                findings.append(Finding(f.name, f"{f.label}: {raw} {f.unit} is outside {f.min} .. {f.max} {f.unit}".strip(), True))
        elif f.type == "choice" and raw not in f.choices:
            findings.append(Finding(f.name, f"{f.label}: choose one of {', '.join(f.choices)}", False))
        elif f.type == "bool" and raw not in ("yes", "no"):
            findings.append(Finding(f.name, f"{f.label}: answer yes or no", False))
        elif len(raw) > 500:
            findings.append(Finding(f.name, f"{f.label}: at most 500 characters", False))
    unknown = sorted(set(values) - {f.name for f in step.fields})
    for name in unknown:
        findings.append(Finding(name, f"{name}: not a field of this step", False))
    return findings
