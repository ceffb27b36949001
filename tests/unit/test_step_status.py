"""Step statuses are computed in one forward pass: long recipes neither recurse nor go quadratic."""

import pytest

from kiosk.domain import batches as bx
from kiosk.domain.recipes import parse_recipe_dict


def recipe(n: int, extra_after: dict | None = None):
    steps = []
    for i in range(n):
        step = {"id": f"s{i}", "title": f"Step {i}", "signatures": [{"meaning": "Performed", "roles": ["operator"]}]}
        if extra_after and i in extra_after:
            step["after"] = extra_after[i]
        steps.append(step)
    return parse_recipe_dict({"id": "long", "version": 1, "title": "Long", "steps": steps}, "test")


def signed(*step_ids):
    return {"steps": {s: {"signatures": [{"meaning": "Performed", "valid": True}]} for s in step_ids}}


@pytest.mark.req("P11-10f")
def test_ten_thousand_linear_steps_are_in_order():
    r = recipe(10_000)
    statuses = bx.step_statuses(r, signed("s0", "s1"))
    assert statuses["s0"] == statuses["s1"] == "done"
    assert statuses["s2"] == "open"
    assert all(statuses[f"s{i}"] == "locked" for i in range(3, 10_000))
    assert bx.step_status(r, signed(), r.step("s9999")) == "locked"
    assert r.step("s9999").title == "Step 9999" and r.step("nope") is None


@pytest.mark.req("P11-10f")
def test_explicit_prerequisites_and_parallel_steps():
    # s2 needs only s0; s3 needs s1 and s2.
    r = recipe(4, {2: ["s0"], 3: ["s1", "s2"]})
    statuses = bx.step_statuses(r, signed("s0"))
    assert statuses == {"s0": "done", "s1": "open", "s2": "open", "s3": "locked"}
    assert bx.step_statuses(r, signed("s0", "s1", "s2"))["s3"] == "open"
