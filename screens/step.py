"""One step of a batch: entry fields (saved as a draft on every change), signatures, corrections.

The sign dialog shows the full manifestation (printed name, user id, role,
meaning, date and time with zone, content hash) before anything is typed;
the step shows as signed only after the services confirm the durable record.
A dialog closed by F12 or the idle lock returns None: not signed.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from kiosk.domain.clock import Clock
from screens.base import FOCUS_BINDINGS, KioskModal, KioskScreen
from screens.dialogs import CredentialsDialog
from screens.ports import ActionResult, Credentials, KioskServices, SignPreview, StepDetail, WorkServices
from screens.widgets import StatusBar, safe_text
from screens.worklist import STATUS_LABEL


class ReasonDialog(KioskModal[str | None]):
    """Ask for a reason (required for GMP-relevant changes; shown in the audit trail)."""

    def __init__(self, title: str = "Reason for the correction",
                 body: str | Text = "Signed values change only with a reason; the earlier signatures become invalid "
                                    "and the step must be signed again.",
                 ok_label: str = "Record correction", min_len: int = 4, back_label: str = "Cancel") -> None:
        super().__init__(classes="dialog-screen")
        self._title, self._body, self._ok_label, self._min = title, body, ok_label, min_len
        self._back_label = back_label

    def compose(self) -> ComposeResult:
        from textual.containers import Vertical

        with Vertical(classes="dialog"):
            yield Static(Text(self._title, style="bold"), classes="dialog-title")
            # A Text body was composed by the caller from safe_text pieces (e.g. the alert it acknowledges).
            yield Static(self._body if isinstance(self._body, Text) else safe_text(self._body), classes="dialog-body")
            yield Input(placeholder="reason", id="reason", max_length=500)
            yield Static("", id="message", classes="message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._ok_label, variant="primary", id="ok")
                yield Button(self._back_label, id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if len(reason) < self._min:
            self.query_one("#message", Static).update(f"Give a reason (at least {self._min} characters).")
            return
        self.dismiss(reason)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


def review_text(review: tuple[str, ...]) -> Text:
    """One or two lines before an approval or release: how many exceptions the batch has, and the first."""
    if not review:
        return Text("Review by exception: none in this batch.")
    text = Text(f"Review by exception: {len(review)} in this batch. ", style="bold")
    text.append_text(safe_text(review[0]))
    if len(review) > 1:
        text.append(f" (and {len(review) - 1} more: the batch PDF lists them all)")
    return text


def manifestation_text(preview: SignPreview) -> Text:
    text = Text()
    for line in preview.lines:
        text.append_text(safe_text(line))
        text.append("\n")
    needs = {"user_id": "your user id", "password": "your password", "totp": "your one-time code"}
    text.append("Needed now: " + ", ".join(needs[c] for c in preview.components if c in needs), style="bold")
    return text


class StepScreen(KioskScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        *FOCUS_BINDINGS,
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, batch_id: str, step_id: str, services: KioskServices, work: WorkServices, clock: Clock) -> None:
        super().__init__(id="step")
        self._batch_id = batch_id
        self._step_id = step_id
        self._services = services
        self._work = work
        self._clock = clock
        self._detail: StepDetail = work.step_detail(batch_id, step_id)
        self._saved = {f.name: str(self._detail.values.get(f.name, "")) for f in self._detail.fields}
        self._loading = True

    def compose(self) -> ComposeResult:
        d = self._detail
        with VerticalScroll(id="step-box"):
            yield Static(Text.assemble(safe_text(d.title, style="bold"), "  —  batch ", safe_text(d.batch_id)),
                         classes="dialog-title")
            if d.instructions:
                yield Static(safe_text(d.instructions))
            yield Static(Text(f"CANCELLED: {d.cancelled}" if d.cancelled else
                              f"Status: {STATUS_LABEL.get(d.status, d.status)}"), id="step-status")
            if d.review is not None:
                yield Static(review_text(d.review), id="review")
            for f in d.fields:
                label = f"{f.label}" + (f" [{f.unit}]" if f.unit else "") + (f"  ({f.limits})" if f.limits else "")
                if f.choices:
                    label += "  one of: " + ", ".join(f.choices)
                yield Label(Text(label))
                yield Input(value=str(d.values.get(f.name, "")), id=f"field-{f.name}", max_length=200,
                            disabled=not d.editable)
            if d.entry_note:
                yield Static(safe_text(d.entry_note), id="entry-note")
            if not d.cancelled:
                yield Label(Text("Comment (needed when a value is out of range)"))
                yield Input(id="comment", max_length=200)
                yield Label(Text("Deviation reference (needed when a value is out of range)"))
                yield Input(id="deviation", max_length=60)
            yield Static(self._signatures_text(), id="signatures")
            if d.next is not None:
                yield Static(safe_text(d.next.note), id="next")
            yield Static("", id="message", classes="message")
            with Horizontal(classes="dialog-buttons", id="actions"):
                if d.next is not None and d.next.offered:
                    yield Button(f"Sign: {d.next.meaning}", variant="primary", id=f"sign-{d.next.meaning}")
                if (d.signatures or d.corrections) and d.editable:  # only a correction changes a record
                    yield Button("Correct values", id="correct")
                if d.withdraw:
                    yield Button(f"Withdraw my {d.withdraw}", id="withdraw")
                yield Button("Back", id="back")
        yield StatusBar(self._clock, self._services.status)

    def _signatures_text(self) -> Text:
        text = Text("Signatures:\n" if self._detail.signatures else "Not signed yet.\n")
        for s in self._detail.signatures:
            line = Text(f"  {s.meaning}: ")
            line.append_text(safe_text(f"{s.name} ({s.user_id}, {s.role}) {s.signed_at}"))
            if not s.valid:
                line.append_text(safe_text(f"  [taken back: {s.taken_back}]", style="bold"))
            text.append_text(line)
            text.append("\n")
        for c in self._detail.corrections:
            text.append_text(safe_text("  correction: " + c))
            text.append("\n")
        return text

    def on_mount(self) -> None:
        # The first thing this person can do: type a value, else give the signature offered, else go back.
        fields = [w for w in self.query(Input) if not w.disabled and (w.id or "").startswith("field-")]
        first = fields[0] if fields else (self.query("#actions Button").first())
        first.focus()
        self._loading = False

    def values(self) -> dict:
        return {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self._detail.fields}

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        # The fields' first Changed events arrive after mounting and carry what the screen showed: saved, they
        # would be a draft of values nobody typed (and one for a person who may not enter them).
        if self._loading or event.input.disabled or not (event.input.id or "").startswith("field-"):
            return
        values = self.values()
        if values != self._saved:
            self._saved = values
            self._work.save_draft(self._batch_id, self._step_id, values)

    def show_message(self, text: str) -> None:
        if self.is_attached:  # a lock may have popped this screen while a dialog was open
            self.query_one("#message", Static).update(safe_text(text))

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        if bid == "back":
            self.action_back()
        elif bid == "correct":
            self.app.open_dialog(ReasonDialog(), self._correct)  # type: ignore[attr-defined]
        elif bid == "withdraw":
            meaning = self._detail.withdraw
            dialog = ReasonDialog(f"Withdraw your {meaning}: signed in error",
                                  f"Your {meaning} on this step is taken back, with any signature that followed it; "
                                  "the values stay recorded. Say why it was given in error (the wrong batch, "
                                  "say).", ok_label="Withdraw signature")
            self.app.open_dialog(dialog, self._withdraw)  # type: ignore[attr-defined]
        elif bid.startswith("sign-"):
            self._start_sign(bid[len("sign-"):])

    def _start_sign(self, meaning: str) -> None:
        result = self._work.prepare_signature(self._batch_id, self._step_id, meaning, self.values(),
                                              self.query_one("#comment", Input).value,
                                              self.query_one("#deviation", Input).value)
        if isinstance(result, ActionResult):
            self.show_message(result.message)
            return
        preview = result
        dialog = CredentialsDialog(preview.title, manifestation_text(preview), ask_totp="totp" in preview.components,
                                   allow_badge=preview.signer is None, user_id=preview.signer, ok_label="Sign")
        self.app.open_dialog(dialog, lambda creds: self._signed(preview, creds))  # type: ignore[attr-defined]

    def _signed(self, preview: SignPreview, credentials: Credentials | None) -> None:
        if not self.is_attached:
            return  # locked away: not signed, nothing to show
        if credentials is None:
            self.show_message("Not signed.")
            return
        self.show_message("Signing…")
        self._sign_worker(preview, credentials)

    @work(thread=True, exit_on_error=False)
    def _sign_worker(self, preview: SignPreview, credentials: Credentials) -> None:
        result = self._work.sign(preview, credentials)
        self.app.call_from_thread(self._recorded, result)

    def _recorded(self, result: ActionResult) -> None:
        """A signature, correction or withdrawal came back: recorded (back to the worklist, which shows the
        stored state, with what was recorded), or refused (why, here)."""
        if not self.is_attached or self.app.screen is not self:
            return  # locked or left meanwhile: the worklist shows the stored state
        if result.ok:
            self.app.pop_screen()
            self.app.notify(result.message, markup=False)
        else:
            self._refused(result)

    def _refused(self, result: ActionResult) -> None:
        if result.clear:  # the fields held a password: they leave the screen with it
            self.app.pop_screen()
            self.app.notify(result.message, severity="error", markup=False, timeout=30)
        else:
            self.show_message(result.message)

    def _correct(self, reason: str | None) -> None:
        if reason is None or not self.is_attached:
            return
        self.show_message("Recording the correction…")
        self._correct_worker(self.values(), reason)

    @work(thread=True, exit_on_error=False)
    def _correct_worker(self, values: dict, reason: str) -> None:
        # In a thread like signing: the correction is checked against the password hash (argon2).
        result = self._work.correct(self._batch_id, self._step_id, values, reason)
        self.app.call_from_thread(self._recorded, result)

    def _withdraw(self, reason: str | None) -> None:
        if reason is None or not self.is_attached:
            return
        self.show_message("Withdrawing the signature…")
        self._withdraw_worker(self._detail.withdraw, reason)

    @work(thread=True, exit_on_error=False)
    def _withdraw_worker(self, meaning: str, reason: str) -> None:
        # In a thread like a correction: the reason is checked against the password hash (argon2).
        result = self._work.withdraw(self._batch_id, self._step_id, meaning, reason)
        self.app.call_from_thread(self._recorded, result)

    def action_back(self) -> None:
        self.app.pop_screen()
