"""Sending what the outbox holds through an SMTP server, with plain ``smtplib``: the server's
settings come as plain values (``SmtpSettings``, read from Airflow's ``smtp_default`` by the
tasks), so nothing here needs Airflow.

Each message is marked sent right after the server accepted it (its 250), in a transaction of
its own. A process that dies between that answer and the commit leaves the message claimed: it
is sent again once its claim ends (``outbox.CLAIM_SECONDS``), with the same ``Message-ID``
(made from its ``dedupe_key``), so that the duplicate can be recognised. Never lost, at most
that one duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import smtplib
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import Engine

from review_ingest.errors import describe
from review_ingest.notify import outbox
from review_ingest.notify.messages import safe_text

log = logging.getLogger(__name__)

DEFAULT_FROM = "review-ingest@localhost"
#: A refusal of this one message: the others are still sent on the same connection.
MESSAGE_ERRORS = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
    UnicodeError,
    ValueError,
)


@dataclass(frozen=True)
class SmtpSettings:
    """An SMTP server: ``use_ssl`` is SMTP over TLS (port 465), ``starttls`` upgrades a plain
    connection; ``verify_tls`` False accepts any certificate (a lab server)."""

    host: str
    port: int = 0
    login: str = ""
    password: str = field(default="", repr=False)
    use_ssl: bool = False
    starttls: bool = False
    verify_tls: bool = True
    timeout: float = 30.0
    mail_from: str = DEFAULT_FROM


def settings_from_connection(
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
) -> SmtpSettings:
    """An Airflow SMTP connection's values, read as the SMTP provider's ``SmtpHook`` reads them:
    SSL and STARTTLS unless its extra sets ``disable_ssl`` / ``disable_tls``, ``timeout``
    (30 s), ``from_email``, ``ssl_context`` (``none``: no certificate check)."""
    return SmtpSettings(
        host=host or "localhost",
        port=int(port or 0),
        login=login or "",
        password=password or "",
        use_ssl=not _flag(extra.get("disable_ssl")),
        starttls=not _flag(extra.get("disable_tls")),
        verify_tls=str(extra.get("ssl_context") or "default") != "none",
        timeout=float(extra.get("timeout") or 30),
        mail_from=str(extra.get("from_email") or DEFAULT_FROM),
    )


def _flag(value: Any) -> bool:
    """A boolean of a connection's extra, given as JSON or as text (``"true"``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def message_id(dedupe_key: str, mail_from: str) -> str:
    """The same ``Message-ID`` every time a message is sent: a duplicate shows as one."""
    digest = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:32]
    domain = mail_from.rpartition("@")[2] or "review-ingest.invalid"
    return f"<{digest}.review-ingest@{domain}>"


def build_email(message: outbox.Pending, mail_from: str, now: dt.datetime) -> EmailMessage:
    """The MIME message: plain text, its attachment (``text/csv``, UTF-8) when it has one."""
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = mail_from
    email["To"] = ", ".join(message.recipients)
    email["Date"] = format_datetime(now.astimezone(dt.UTC))
    email["Message-ID"] = message_id(message.dedupe_key, mail_from)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.body)
    if message.attachment_name is not None:
        email.add_attachment(
            message.attachment or "", subtype="csv", filename=message.attachment_name
        )
    return email


@contextmanager
def smtp_session(settings: SmtpSettings) -> Iterator[smtplib.SMTP]:
    """A connection to the server, upgraded to TLS and logged in as ``settings`` say."""
    context = ssl.create_default_context()
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.use_ssl:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.starttls and not settings.use_ssl:
            client.starttls(context=context)
            client.ehlo()
        if settings.login and settings.password:
            client.login(settings.login, settings.password)
        yield client
    finally:
        with suppress(smtplib.SMTPException, OSError):
            client.quit()
        client.close()


@dataclass(frozen=True)
class Flushed:
    """What a flush did: messages sent, attempts that failed, messages still waiting."""

    sent: int
    failed: int
    unsent: int


def flush(
    engine: Engine,
    smtp: Callable[[], SmtpSettings],
    now: dt.datetime | None = None,
    limit: int = outbox.FLUSH_LIMIT,
) -> Flushed:
    """Send every message due at ``now`` (default: the clock's now) on one connection.

    ``smtp`` gives the server's settings, read only when a message is due. A server that cannot
    be reached, or a connection lost, fails the attempt of every message not sent yet; a
    message the server refuses fails alone. A failed message waits for its next attempt
    (``outbox.retry_delay``); the flush itself never fails for the server's sake.
    """
    now = now or dt.datetime.now(dt.UTC)
    due = outbox.pending(engine, now, limit)
    if not due:
        return Flushed(0, 0, outbox.unsent(engine))
    settings = smtp()
    claimed = [message for message in due if outbox.claim(engine, message, now)]
    sent, failed = _send(engine, settings, claimed, now)
    flushed = Flushed(sent, failed, outbox.unsent(engine))
    log.info(
        "outbox: %d sent, %d failed (%s:%s), %d waiting",
        flushed.sent,
        flushed.failed,
        settings.host,
        settings.port,
        flushed.unsent,
    )
    return flushed


def _send(
    engine: Engine, settings: SmtpSettings, claimed: list[outbox.Pending], now: dt.datetime
) -> tuple[int, int]:
    """Send the claimed messages in order; each is marked as soon as the server answered."""
    left = list(claimed)
    sent = failed = 0
    try:
        with smtp_session(settings) as client:
            while left:
                message = left.pop(0)
                try:
                    client.send_message(
                        build_email(message, settings.mail_from, now),
                        settings.mail_from,
                        list(message.recipients),
                    )
                except MESSAGE_ERRORS as exc:
                    _failed(engine, message, exc, now)
                    failed += 1
                    continue
                except (smtplib.SMTPException, OSError):
                    left.insert(0, message)
                    raise
                outbox.mark_sent(engine, message, now)
                sent += 1
    except (smtplib.SMTPException, OSError) as exc:  # unreachable, refused, lost, TLS, login
        log.warning(
            "SMTP server %s:%s: %s; %d message(s) wait for their next attempt",
            settings.host,
            settings.port,
            describe(exc),
            len(left),
        )
        for message in left:
            _failed(engine, message, exc, now)
        failed += len(left)
    return sent, failed


def _failed(engine: Engine, message: outbox.Pending, exc: BaseException, now: dt.datetime) -> None:
    error = safe_text(describe(exc))
    next_attempt = outbox.mark_failed(engine, message, error, now)
    log.warning(
        "outbox message %d (%s): attempt %d failed: %s; next attempt at %s",
        message.message_id,
        message.kind,
        message.attempts + 1,
        error,
        next_attempt.isoformat(),
    )
