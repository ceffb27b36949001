"""No password, TOTP secret or private key ever appears in a record, a log line or an error message."""

import logging

import pytest

from kiosk.services.auth import AuthError, InvalidInput
from tests.services.conftest import totp_now  # noqa: F401 - fixtures below
from tests.services.conftest import admin, config, kiosk  # noqa: F401


@pytest.mark.req("SEC-63B")
@pytest.mark.req("A11-12")
def test_secrets_stay_out_of_records_logs_and_errors(kiosk, admin, clock, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    actor, admin_issued = admin
    issued = kiosk.auth.create_user(actor, "jane.op", "Jane Operator", ["operator"], reason="starter",
                                    identity_verified=True)
    new_password = "lantern orchard seventeen"
    messages = []
    for attempt in ("wrong-" + issued.temporary_password, issued.temporary_password):
        clock.advance(31)
        messages.append(kiosk.auth.authenticate("jane.op", attempt, totp_now(issued.totp_secret, clock)).message)
    for bad in ("password1234", "jane.op-password", "short"):
        clock.advance(31)
        with pytest.raises(InvalidInput) as err:
            kiosk.auth.change_password("jane.op", issued.temporary_password, bad, totp_now(issued.totp_secret, clock))
        messages.append(str(err.value))
        assert bad not in str(err.value)
    clock.advance(31)
    kiosk.auth.change_password("jane.op", issued.temporary_password, new_password, totp_now(issued.totp_secret, clock))
    clock.advance(31)
    with pytest.raises(AuthError) as err:
        kiosk.auth.unlock("jane.op", new_password, "000000", "site.admin", "not suspended")
    messages.append(str(err.value))

    secrets = [issued.temporary_password, new_password, issued.totp_secret, admin_issued.temporary_password,
               admin_issued.totp_secret]
    pem = kiosk.identity.key.to_pem().decode()
    stored = b"".join(row.raw for row in kiosk.store.iter_rows()).decode()
    text_everywhere = "\n".join([stored, caplog.text, *messages, repr(issued), repr(kiosk.identity.key),
                                 repr(kiosk.auth.hasher), repr(kiosk.auth.box)])
    for secret in secrets:
        assert secret not in text_everywhere
    assert pem.splitlines()[1] not in text_everywhere
    assert "credential" in stored and '"enc":"v1.' in stored  # the credential is there, sealed
