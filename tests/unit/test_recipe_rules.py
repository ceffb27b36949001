"""Recipe-level rules: who starts a batch, what a meaning vouches for, and the batch status they lead to."""

import pytest

from kiosk.domain import batches as bx
from kiosk.domain.recipes import (ROLES, RecipeError, as_recipe_writes, check_values, describe_rule,
                                  describe_starters, parse_recipe_dict, unmet_requirements)


def release_step(**signature):
    return {"id": "release", "title": "QA release",
            "fields": [{"name": "deviations", "type": "choice", "label": "Deviations",
                        "choices": ["none", "closed", "open"]},
                       {"name": "note", "type": "text", "label": "Note", "required": False},
                       {"name": "reviewed", "type": "bool", "label": "Record reviewed"}],
            "signatures": [{"meaning": "Approved", "roles": ["qa"]},
                           {"meaning": "Released", "roles": ["qa"], **signature}]}


def recipe(*, start_roles=None, **signature):
    data = {"id": "r", "version": 1, "title": "R",
            "steps": [{"id": "make", "title": "Make", "signatures": [{"meaning": "Performed", "roles": ["operator"]}]},
                      release_step(**signature)]}
    if start_roles is not None:
        data["start_roles"] = start_roles
    return parse_recipe_dict(data, "r.toml")


@pytest.mark.req("P11-10f")
def test_answers_typed_in_another_case_take_the_recipes_spelling_and_nothing_else_changes():
    step = recipe().step("release")
    assert as_recipe_writes(step, {"deviations": "Closed", "reviewed": "YES", "note": "Yes"}) == {
        "deviations": "closed", "reviewed": "yes", "note": "Yes"}  # a text field is what was typed
    assert as_recipe_writes(step, {"deviations": "shut", "reviewed": "y"}) == {"deviations": "shut", "reviewed": "y"}
    assert check_values(step, as_recipe_writes(step, {"deviations": "NONE", "reviewed": "No"})) == []
    # Two choices that differ only in case: what was typed decides, never a guess.
    twins = parse_recipe_dict({"id": "t", "version": 1, "title": "T", "steps": [{
        "id": "s", "title": "S", "fields": [{"name": "grade", "type": "choice", "choices": ["Aa", "aA"]}],
        "signatures": [{"meaning": "Performed", "roles": ["operator"]}]}]}, "t.toml").step("s")
    assert as_recipe_writes(twins, {"grade": "aA"}) == {"grade": "aA"}
    assert as_recipe_writes(twins, {"grade": "AA"}) == {"grade": "AA"}
    assert [f.message for f in check_values(twins, {"grade": "AA"})] == ["grade: choose one of Aa, aA"]


@pytest.mark.req("P11-10g")
def test_a_meaning_can_require_values_of_a_choice_or_yes_no_field():
    r = recipe(requires={"deviations": ["none", "closed"], "reviewed": "yes"})
    step = r.step("release")
    released, approved = step.rule(step.signatures[1].meaning), step.signatures[0]
    assert released.requires == (("deviations", ("none", "closed")), ("reviewed", ("yes",)))
    assert unmet_requirements(step, released, {"deviations": "closed", "reviewed": "yes"}) == []
    assert unmet_requirements(step, released, {"deviations": "open", "reviewed": "yes"}) == [
        "Released needs Deviations to be none or closed; it is 'open'"]
    assert unmet_requirements(step, released, {"deviations": "none"}) == [
        "Released needs Record reviewed to be yes; it is empty"]
    assert unmet_requirements(step, approved, {"deviations": "open"}) == []  # Approved has no such rule
    assert describe_rule(step, released) == ("Released by qa, only with Deviations none or closed, "
                                             "only with Record reviewed yes")
    # The rule is part of the signed recipe: changing it changes the content hash.
    assert recipe(requires={"deviations": ["none"]}).content_hash != recipe().content_hash


@pytest.mark.parametrize("requires, message", [
    ({"colour": ["red"]}, "requires names 'colour', which is not a choice or yes/no field of this step"),
    ({"note": ["x"]}, "requires names 'note', which is not a choice or yes/no field of this step"),
    ({"deviations": ["closed", "withdrawn"]}, "requires.deviations must list values of Deviations: none, closed, open"),
    ({"deviations": []}, "requires.deviations must list values of Deviations"),
    ({"reviewed": ["true"]}, "requires.reviewed must list values of Record reviewed: yes, no"),
    ({"deviations": [1]}, "requires.deviations must be a list"),
    (["deviations"], "requires must be a table"),
])
def test_a_requirement_that_cannot_hold_is_refused_with_the_step_and_meaning(requires, message):
    where = "r.toml: step 'release', signature 'Released': "
    with pytest.raises(RecipeError, match=where + message.replace(".", r"\.")):
        recipe(requires=requires)


@pytest.mark.req("P11-10g")
def test_a_recipe_names_who_may_start_its_batches():
    assert recipe().start_roles == ROLES and describe_starters(recipe()) == "any role"
    limited = recipe(start_roles=["supervisor", "qa"])
    assert limited.may_start("qa") and not limited.may_start("operator") and not limited.may_start("")
    assert describe_starters(limited) == "supervisor or qa"
    for wrong, message in ((["planner"], "start_roles: must be one or more of"), ([], "start_roles: must be one"),
                           ("qa", "start_roles must be a list")):
        with pytest.raises(RecipeError, match=message):
            recipe(start_roles=wrong)


def state(**steps):
    """A batch record: each step's valid signature meanings (a trailing "!" marks a correction with none valid)."""
    out = {}
    for step_id, meanings in steps.items():
        if meanings == "!":
            out[step_id] = {"values": {"x": "1"}, "corrections": [{}], "signatures": [{"meaning": "Performed",
                                                                                       "valid": False}]}
        else:
            out[step_id] = {"values": {"x": "1"}, "signatures": [{"meaning": m, "valid": True} for m in meanings]}
    return {"steps": out}


def test_the_batch_status_follows_its_steps():
    r = recipe()
    assert bx.batch_status(r, state()) == "not_started"
    assert bx.batch_status(r, state(make=["Performed"])) == "in_progress"
    assert bx.batch_status(r, state(make=["Performed"], release=["Approved"])) == "in_progress"
    assert bx.batch_status(r, state(make="!")) == "needs_resign"
    assert bx.batch_status(r, state(make=["Performed"], release=["Approved", "Released"])) == "released"
    no_release = parse_recipe_dict({"id": "n", "version": 1, "title": "N", "steps": [
        {"id": "make", "title": "Make", "signatures": [{"meaning": "Performed", "roles": ["operator"]}]}]}, "n")
    assert bx.batch_status(no_release, state(make=["Performed"])) == "complete"


@pytest.mark.req("P11-10k")
@pytest.mark.parametrize("value", ["2026-13-01", "15.12.2026", "2026-12-1", 20261215, "", "2026-12-15T06:00"])
def test_an_effective_date_is_a_quoted_calendar_date(value):
    data = {"id": "r", "version": 2, "title": "R", "effective_from": value,
            "steps": [{"id": "make", "title": "Make", "signatures": [{"meaning": "Performed", "roles": ["operator"]}]}]}
    with pytest.raises(RecipeError, match='effective_from: must be a date in quotes, e.g. effective_from = "2026-12-15"'):
        parse_recipe_dict(data, "r.toml")
    data["effective_from"] = "2026-12-15"
    assert parse_recipe_dict(data, "r.toml").effective_from == "2026-12-15"


def test_a_version_in_effect_supersedes_the_lower_ones_and_one_registered_ahead_waits():
    def doc(version, effective=None):
        data = {"id": "r", "version": version, "title": "R", "steps": [
            {"id": "make", "title": "Make", "signatures": [{"meaning": "Performed", "roles": ["operator"]}]}]}
        r = parse_recipe_dict({**data, "effective_from": effective} if effective else data, "r.toml")
        return {"key": r.key, "id": r.id, "version": r.version, "source": r.source, "content_hash": r.content_hash}

    docs = [doc(1), doc(2, "2026-12-01"), doc(3, "2026-12-15")]
    assert bx.pending(docs, "2026-11-30") == {"r@2": "2026-12-01", "r@3": "2026-12-15"}
    assert bx.superseded(docs, "2026-11-30") == {}
    assert bx.superseded(docs, "2026-12-01") == {"r@1": "r@2"} and bx.pending(docs, "2026-12-01") == {
        "r@3": "2026-12-15"}
    assert bx.superseded(docs, "2026-12-15") == {"r@1": "r@3", "r@2": "r@3"} and bx.pending(docs, "2026-12-15") == {}


def test_a_correction_is_described_field_by_field_with_labels_and_units():
    from kiosk.domain.recipes import describe_changes

    step = parse_recipe_dict({"id": "r", "version": 1, "title": "R", "steps": [{
        "id": "w", "title": "Weigh", "signatures": [{"meaning": "Performed", "roles": ["operator"]}],
        "fields": [{"name": "bal", "label": "Balance ID"}, {"name": "kg", "type": "decimal", "label": "Net weight",
                                                             "unit": "kg"}, {"name": "note", "required": False}]}]},
        "r.toml").step("w")
    assert describe_changes(step, {"bal": "BAL-7", "kg": "1.500"},
                            {"bal": "BAL-7", "kg": "1.501", "note": "re-zeroed"}) == (
        "Net weight: 1.500 kg → 1.501 kg; note: (empty) → re-zeroed")
    assert describe_changes(step, {"bal": "BAL-7", "kg": "1.5"}, {"bal": "BAL-8"}) == (
        "Balance ID: BAL-7 → BAL-8; Net weight: 1.5 kg → (empty)")
