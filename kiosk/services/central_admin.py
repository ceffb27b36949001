"""Who may decide about a terminal from the central store's command line.

Kiosk admins decide on a kiosk (a record in that kiosk's chain, checked again
when it is ingested). At the central store the decision becomes a record in
the central chain, so the admin must prove who they are against the central
directory: user id and password, with the same single message and the same
hash work for an unknown id as for a wrong password. Before any admin exists
centrally (a new site: the first terminal's records wait for its approval),
only the holder of the central key can approve, and the record says exactly
that instead of naming a person.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from kiosk.domain.passwords import PasswordHasher
from kiosk.domain.totp import SecretBox, SecretBoxError
from kiosk.services.auth import typed_in

CENTRAL_KEY_HOLDER = {"user_id": "central-key-holder", "name": "Holder of the central store key",
                      "role": "central-key-holder"}
REFUSED = "Invalid admin id or password (or the account is not an active admin)."


class CentralAdminError(Exception):
    """The person at the central store's command line may not make this decision; the message says why."""


class CentralAdmin:
    def __init__(self, user_doc: Callable[[str], dict[str, Any] | None], has_active_admin: Callable[[], bool],
                 hasher: PasswordHasher, box: SecretBox | None) -> None:
        self.user_doc = user_doc
        self.has_active_admin = has_active_admin
        self.hasher = hasher
        self.box = box  # the site key: password hashes are sealed with it at rest

    def authenticate(self, user_id: str, password: str, recorded: Iterable[str] = ()) -> dict[str, str]:
        """The actor of a decision, after a password check with constant work for unknown ids.

        ``recorded`` is what the decision will record (its reason, typed at a
        prompt that shows it): holding the password, it is refused.
        """
        user = self.user_doc(user_id.strip().lower()) if user_id.strip() else None
        if user is None or not user.get("credential"):
            self.hasher.verify_dummy(password)
            raise CentralAdminError(REFUSED)
        if self.box is None:
            raise CentralAdminError("checking an admin's password needs the site key (--site-key FILE)")
        try:
            stored = self.box.decrypt(f"password:{user['user_id']}", user["credential"])
        except SecretBoxError:
            self.hasher.verify_dummy(password)
            raise CentralAdminError("the site key given does not open this site's credentials (wrong --site-key?)")
        ok = self.hasher.verify(stored, password)
        if not ok or user.get("status") != "active" or "admin" not in (user.get("roles") or []):
            raise CentralAdminError(REFUSED)
        if typed_in(password, recorded):
            raise CentralAdminError("not recorded: the reason holds your password, and it was shown as you typed it. "
                                    "Change your password at a terminal, then decide again.")
        return {"user_id": user["user_id"], "name": user["printed_name"], "role": "admin"}

    def key_holder(self) -> dict[str, str]:
        """The actor for approvals before the site has an admin centrally; refused once one exists."""
        if self.has_active_admin():
            raise CentralAdminError("an active admin exists in the central directory: decide as that admin "
                                    "(--admin ID, password prompted), not as the key holder")
        return dict(CENTRAL_KEY_HOLDER)
