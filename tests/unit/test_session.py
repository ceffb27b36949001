import dataclasses

from kiosk.domain.session import LockReason, Session, State


def test_a_signature_changes_only_the_count_of_the_session():
    """signed() lists every field itself (it is on every signature's path): a field added later must not be
    dropped by it."""
    fields = dataclasses.fields(Session)
    values = {"state": State.IDLE_WARNED, "owner": "jane.op", "name": "Jane", "role": "operator",
              "roles": ("operator",), "session_id": "s-1", "started": 5.0, "last_activity": 7.0, "signatures": 2,
              "last_owner": "jane.op", "last_reason": LockReason.MANUAL}
    assert {f.name for f in fields} == set(values), "a new Session field needs a non-default value here"
    session = Session(**values)
    assert all(getattr(session, f.name) != f.default for f in fields)
    assert session.signed() == dataclasses.replace(session, signatures=3)
