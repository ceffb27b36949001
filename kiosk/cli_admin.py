"""`kiosk admin ...`: site administration from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Site administration.", no_args_is_help=True)

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Kiosk data directory.")]


@app.command()
def backup(out: Annotated[Path, typer.Option("--out", help="Backup file to create.")], data_dir: DataDir = None) -> None:
    """Back up the local store (online, consistent) and verify the copy by its hash chain."""
    from kiosk.cli import EXIT_FAILED, fail
    from kiosk.paths import resolve_data_dir
    from storage.backup import BackupError, backup as do_backup

    try:
        result = do_backup(resolve_data_dir(data_dir), out)
    except BackupError as exc:
        raise fail(str(exc), code=EXIT_FAILED)
    typer.echo(f"backup written and verified: {result.path} ({result.report.records} records)")


def _central_heads(data_dir: Path, url: str) -> dict[str, int]:
    """What the central store has receipted for this terminal's chain (a restore must not go behind it)."""
    from kiosk.cli import EXIT_FAILED, fail
    from kiosk.system_clock import SystemClock
    from kiosk.domain.central_url import without_password
    from storage.central import CentralStore
    from storage.keyfile import KeyFileError, load_identity

    try:
        identity = load_identity(data_dir)
    except KeyFileError as exc:
        raise fail(str(exc))
    if identity is None:
        return {}
    central = None
    try:
        central = CentralStore(url, SystemClock())
        got = central.receipt(identity.chain)
    except Exception as exc:  # noqa: BLE001 - a bad URL or no connection: say so, restore nothing
        raise fail(f"{without_password(url)}: cannot ask the central store how far {identity.chain} got "
                   f"({type(exc).__name__}); nothing was restored. Retry when it is reachable.", code=EXIT_FAILED)
    finally:
        if central is not None:
            central.close()
    # The upto is enough to refuse: a forged, higher receipt can only make this restore more careful.
    return {identity.chain: got[0].upto} if got else {}


@app.command()
def restore(
    backup_file: Annotated[Path, typer.Option("--from", help="Backup file to restore.")],
    data_dir: DataDir = None,
    url: Annotated[Optional[str], typer.Option(
        "--url", envvar="KIOSK_CENTRAL_URL",
        help="Central store: refuse a backup older than what it already received from this terminal.")] = None,
) -> None:
    """Restore a verified backup; the replaced store is moved aside, never deleted."""
    from kiosk.cli import EXIT_FAILED, fail
    from kiosk.domain.clock import format_ts
    from kiosk.paths import resolve_data_dir
    from kiosk.system_clock import SystemClock
    from storage.backup import BackupError, restore as do_restore

    directory = resolve_data_dir(data_dir)
    heads = _central_heads(directory, url) if url else None
    stamp = format_ts(SystemClock().now()).replace(":", "")
    try:
        report, moved = do_restore(backup_file, directory, central_heads=heads, moved_suffix=stamp)
    except BackupError as exc:
        raise fail(str(exc), code=EXIT_FAILED)
    typer.echo(f"restored and verified: {report.records} records" + (f"; previous store kept as {moved}" if moved else ""))


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", envvar="KIOSK_CONFIG", help="Policy file.")]


# Where a kiosk's store comes from, for a command run where there is none.
NEW_KIOSK_HINT = ("; a new kiosk's store is made by `kiosk admin bootstrap` (a standalone kiosk) or by its first "
                  "`kiosk run` (a terminal of a site with a central store)")


def _open_kiosk(data_dir: Optional[Path], config_path: Optional[Path], *, create: bool = False):
    """Open this terminal's kiosk (store, directory, services) for an admin command; only ``create``
    (`kiosk admin bootstrap`, a standalone kiosk's first admin) makes a store where there is none."""
    from kiosk.app import build_kiosk
    from kiosk.cli import existing_store, fail
    from kiosk.config import ConfigError, load_config
    from kiosk.paths import resolve_data_dir
    from kiosk.system_clock import SystemClock
    from storage.keyfile import KeyFileError
    from storage.migrate import SchemaTooNew
    from storage.sqlite import StoreUnavailable

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise fail(str(exc))
    directory = resolve_data_dir(data_dir) if create else existing_store(data_dir, NEW_KIOSK_HINT)
    try:
        return build_kiosk(config, directory, SystemClock(config.site.timezone))
    except (ConfigError, KeyFileError, SchemaTooNew, StoreUnavailable) as exc:
        raise fail(str(exc))


def _show_issued(issued, heading: str) -> None:
    """The one-time display of issued credentials (the only place they are ever printed)."""
    import io

    import segno

    typer.echo(heading)
    typer.echo(f"  user id:            {issued.user_id}")
    typer.echo(f"  temporary password: {issued.temporary_password}   (must be changed at first login)")
    if issued.totp_uri:
        typer.echo(f"  TOTP enrolment:     {issued.totp_uri}")
        buf = io.StringIO()
        segno.make(issued.totp_uri, error="m").terminal(out=buf, compact=True)
        typer.echo(buf.getvalue())
    typer.echo("This is shown once and is not stored in clear anywhere. Hand it over in person.")


@app.command()
def bootstrap(
    user_id: Annotated[str, typer.Option("--user-id", prompt="Admin user id")],
    name: Annotated[str, typer.Option("--name", prompt="Printed name")],
    data_dir: DataDir = None,
    config: ConfigOpt = None,
) -> None:
    """Create the site's first admin (once). Prints a one-time temporary password and TOTP enrolment."""
    from kiosk.cli import fail
    from kiosk.services.auth import AuthError

    kiosk = _open_kiosk(data_dir, config, create=True)
    try:
        issued = kiosk.auth.bootstrap(user_id, name)
    except AuthError as exc:
        raise fail(str(exc), code=1)
    finally:
        kiosk.close()
    _show_issued(issued, "First admin created.")


def _authenticated_admin(kiosk, admin_id: str):
    from kiosk.cli import fail
    from kiosk.services.auth import Actor

    password = typer.prompt("Admin password", hide_input=True)
    code = typer.prompt("One-time code (empty if none)", default="", show_default=False)
    result = kiosk.auth.authenticate(admin_id, password, code or None, require_totp=True, purpose="admin")
    if not result.ok:
        raise fail(result.message, code=1)
    if not result.user.has_role("admin"):
        raise fail("this needs an admin", code=1)
    return Actor(result.user.user_id, result.user.printed_name, "admin"), result


@app.command("unlock")
def unlock_user(
    user: Annotated[str, typer.Argument(help="The suspended user id.")],
    admin: Annotated[str, typer.Option("--admin", prompt="Admin user id")],
    reason: Annotated[str, typer.Option("--reason", prompt="Reason")],
    data_dir: DataDir = None,
    config: ConfigOpt = None,
) -> None:
    """Break-glass unlock with admin credentials, for when no supervisor can: recorded and alerted."""
    from kiosk.cli import fail
    from kiosk.services.auth import AuthError

    kiosk = _open_kiosk(data_dir, config)
    try:
        password = typer.prompt("Admin password", hide_input=True)
        code = typer.prompt("One-time code (empty if none)", default="", show_default=False)
        done = kiosk.auth.unlock(admin, password, code or None, user, reason, break_glass=True)
    except AuthError as exc:
        raise fail(str(exc), code=1)
    finally:
        kiosk.close()
    typer.echo(f"{done.user.user_id} is {done.user.status}; the unlock is recorded{done.closing()}, and "
               "supervisors are alerted.")


site_key_app = typer.Typer(help="The site key that seals passwords and TOTP secrets: create, install, check; "
                                "the fingerprint of an unknown id.", no_args_is_help=True)
app.add_typer(site_key_app, name="site-key")


@site_key_app.command("create")
def site_key_create(
    out: Annotated[Path, typer.Option("--out", help="Key file to create (mode 0600; never overwritten).")],
) -> None:
    """Create a new site's key, once per site; then install the same file on every terminal of the site."""
    from kiosk.cli import fail
    from storage.keyfile import KeyFileError
    from storage.sitekey import site_key_check, write_site_key_file

    try:
        key = write_site_key_file(out)
    except KeyFileError as exc:
        raise fail(str(exc))
    typer.echo(f"site key written: {out} (mode 0600)\ncheck value: {site_key_check(key)}\n"
               "Keep a copy offline like the central key: without it no terminal opens the sealed passwords.\n"
               f"Install it on each terminal: kiosk admin site-key install {out} --data-dir DIR")


@site_key_app.command("install")
def site_key_install(
    source: Annotated[Path, typer.Argument(help="The site's key file (mode 0600).")],
    data_dir: DataDir = None,
) -> None:
    """Install the site's key in this terminal's data directory, before its first start."""
    from kiosk.cli import fail
    from kiosk.paths import resolve_data_dir
    from storage.keyfile import KeyFileError
    from storage.sitekey import install_site_key, site_key_check

    directory = resolve_data_dir(data_dir)
    try:
        key, copied = install_site_key(source, directory)
    except KeyFileError as exc:
        raise fail(str(exc))
    done = "installed" if copied else "already installed (the same key)"
    typer.echo(f"site key {done} in {directory}\ncheck value: {site_key_check(key)}")


def _site_key(data_dir: Path | None, file: Path | None) -> tuple[Path, bytes]:
    from kiosk.cli import fail
    from kiosk.paths import resolve_data_dir
    from storage.keyfile import KeyFileError
    from storage.sitekey import SITE_KEY_FILE, load_site_key

    path = file if file is not None else resolve_data_dir(data_dir) / SITE_KEY_FILE
    try:
        return path, load_site_key(path.parent, path.name)
    except KeyFileError as exc:
        raise fail(str(exc))


KeyFile = Annotated[Optional[Path], typer.Option("--file", help="A key file instead of a data directory.")]


@site_key_app.command("check")
def site_key_show_check(data_dir: DataDir = None, file: KeyFile = None) -> None:
    """Print the check value of a terminal's (or a file's) site key, to compare with the admin's copy."""
    from storage.sitekey import site_key_check

    path, key = _site_key(data_dir, file)
    typer.echo(f"{path}: check value {site_key_check(key)}")


@site_key_app.command("fingerprint")
def site_key_fingerprint(
    identity: Annotated[str, typer.Argument(help="A user id (or, with --badge, a badge id) to look for.")],
    badge: Annotated[bool, typer.Option("--badge", help="IDENTITY is a badge id.")] = False,
    data_dir: DataDir = None,
    file: KeyFile = None,
) -> None:
    """Print the fingerprint under which failed sign-ins with this id are recorded when no account has it.

    The audit trail never holds the text typed as an unknown user id or badge
    (it may be a password typed in the wrong field), only this keyed
    fingerprint. Search the audit trail or the alerts for the printed value.
    """
    from kiosk.cli import fail
    from kiosk.domain.totp import SecretBox
    from kiosk.services.auth import INVALID_ID, unknown_identity

    if not identity.strip():
        raise fail("enter the user id or badge id to look for")
    fingerprint = unknown_identity(SecretBox(_site_key(data_dir, file)[1]), identity, badge=badge)
    if fingerprint == INVALID_ID:
        raise fail(f"{identity!r} is not a valid user id; failed sign-ins with such text are recorded only as "
                   f"{INVALID_ID!r}")
    typer.echo(fingerprint)


recipes_app = typer.Typer(help="Recipes (master batch records): check a file, register it, list them.",
                          no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
RecipeFile = Annotated[Path, typer.Argument(help="The recipe file (TOML), e.g. config/recipes/buffer-prep.toml.")]


def _recipe_summary(recipe) -> None:
    from kiosk.domain.recipes import describe_rule, describe_starters

    typer.echo(f"{recipe.key}: {recipe.title} ({recipe.product}); {len(recipe.steps)} steps; "
               f"batches started by {describe_starters(recipe)}; sha256 {recipe.content_hash}")
    for i, step in enumerate(recipe.steps, 1):
        who = "; ".join(describe_rule(step, r) for r in step.signatures)
        typer.echo(f"  {i:>2}. {step.title} [{step.id}]: {len(step.fields)} field(s); {who}")


@recipes_app.command("check")
def recipes_check(path: RecipeFile) -> None:
    """Validate a recipe file and show what it defines; nothing is registered (for the recipe's author)."""
    from kiosk.cli import fail
    from kiosk.domain.recipes import RecipeError
    from kiosk.services.signing import read_recipe_file

    try:
        recipe = read_recipe_file(path)
    except RecipeError as exc:
        raise fail(str(exc), code=1)
    _recipe_summary(recipe)
    typer.echo("valid; register it with `kiosk admin recipes register` (a new content needs a new version)")


@recipes_app.command("register")
def recipes_register(
    path: RecipeFile,
    admin: Annotated[str, typer.Option("--admin", prompt="Admin user id")],
    reason: Annotated[str, typer.Option("--reason", prompt=True)],
    data_dir: DataDir = None,
    config: ConfigOpt = None,
) -> None:
    """Register a recipe version on this terminal (a signed record; the central store passes it to the others)."""
    from kiosk.cli import fail
    from kiosk.domain.recipes import RecipeError
    from kiosk.services.auth import AuthError
    from kiosk.services.signing import SigningError

    kiosk = _open_kiosk(data_dir, config)
    try:
        actor, _ = _authenticated_admin(kiosk, admin)
        known = {r["key"] for r in kiosk.signing.recipes()}
        recipe = kiosk.signing.register_recipe_file(path, actor.body(), reason)
        replaced, waiting = kiosk.signing.superseded(), kiosk.signing.pending()
    except (AuthError, RecipeError, SigningError) as exc:
        raise fail(str(exc), code=1)
    finally:
        kiosk.close()
    _recipe_summary(recipe)
    typer.echo(f"{recipe.key} was already registered with this content; nothing changed" if recipe.key in known
               else f"{recipe.key} registered (a signed record)")
    if recipe.key in waiting:
        typer.echo(f"{recipe.key} takes effect on {waiting[recipe.key]} (site time); until then new batches start "
                   "from the version in effect")
    if recipe.key in replaced:
        typer.echo(f"note: {replaced[recipe.key]} is registered too and is the current version: new batches start "
                   "from it, not from this one")
    older = sorted(key for key, current in replaced.items() if current == recipe.key)
    if older and recipe.key not in known:
        typer.echo(f"{', '.join(older)} superseded: new batches start from {recipe.key}; batches already started "
                   "finish on their version")


@recipes_app.command("list")
def recipes_list(data_dir: DataDir = None, config: ConfigOpt = None) -> None:
    """Every registered recipe version."""
    kiosk = _open_kiosk(data_dir, config)
    try:
        replaced, waiting = kiosk.signing.superseded(), kiosk.signing.pending()
        for r in kiosk.signing.recipes():
            status = (f"  (takes effect {waiting[r['key']]})" if r["key"] in waiting else
                      f"  (superseded by {replaced[r['key']]})" if r["key"] in replaced else "")
            typer.echo(f"{r['key']:<32} sha256 {r['content_hash'][:16]}…  {r['title']}{status}")
    finally:
        kiosk.close()


users_app = typer.Typer(help="Users: list, create, change, reset credentials.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("list")
def users_list(data_dir: DataDir = None, config: ConfigOpt = None) -> None:
    """List every user (deactivated ones too: ids are never deleted)."""
    kiosk = _open_kiosk(data_dir, config)
    try:
        for u in kiosk.auth.users():
            typer.echo(f"{u.user_id:<24} {u.status:<12} {','.join(u.roles):<28} last login {u.last_login or '-'}  "
                       f"{u.printed_name}")
    finally:
        kiosk.close()


@users_app.command("create")
def users_create(
    user_id: Annotated[str, typer.Option("--user-id", prompt=True)],
    name: Annotated[str, typer.Option("--name", prompt="Printed name")],
    roles: Annotated[str, typer.Option("--roles", prompt="Roles (comma separated)")],
    reason: Annotated[str, typer.Option("--reason", prompt=True)],
    admin: Annotated[str, typer.Option("--admin", prompt="Admin user id")],
    identity_verified: Annotated[bool, typer.Option("--identity-verified", help="I verified this person's identity.")] = False,
    badge: Annotated[Optional[str], typer.Option("--badge")] = None,
    data_dir: DataDir = None,
    config: ConfigOpt = None,
) -> None:
    """Create a user; prints their one-time temporary password and TOTP enrolment."""
    from kiosk.cli import fail
    from kiosk.services.auth import AuthError

    kiosk = _open_kiosk(data_dir, config)
    try:
        actor, _ = _authenticated_admin(kiosk, admin)
        issued = kiosk.auth.create_user(actor, user_id, name, [r for r in roles.split(",") if r.strip()],
                                        reason=reason, identity_verified=identity_verified, badge_id=badge)
    except AuthError as exc:
        raise fail(str(exc), code=1)
    finally:
        kiosk.close()
    _show_issued(issued, f"User {issued.user_id} created.")
