"""A real SMTP server on loopback (aiosmtpd) for the notification tests: started on a free port,
stopped and started again on that port (the outage of a fault test), and what it received,
parsed with the standard ``email`` package."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller

from review_ingest.notify.sending import SmtpSettings
from tests.kit.processes import HOST, free_port, wait_for

MAIL_FROM = "review-ingest@example.test"


@dataclass(frozen=True)
class Received:
    """One message as the server received it: its envelope and its parsed MIME parts."""

    envelope_from: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    headers: dict[str, str]
    body: str
    attachments: dict[str, str]
    raw: bytes

    @property
    def text(self) -> str:
        """Everything a person reads: headers, body and attachments."""
        shown = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return "\n".join([shown, self.body, *self.attachments.values()])


def parse(envelope_from: str, recipients: list[str], raw: bytes) -> Received:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain",))
    return Received(
        envelope_from=envelope_from,
        recipients=tuple(recipients),
        subject=str(message["Subject"]),
        message_id=str(message["Message-ID"]),
        headers={key: str(value) for key, value in message.items()},
        body=body.get_content() if body is not None else "",
        attachments={
            str(part.get_filename()): part.get_content() for part in message.iter_attachments()
        },
        raw=raw,
    )


class _Inbox:
    """aiosmtpd's handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = parse(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        with self.lock:
            self.messages.append(received)
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on ``127.0.0.1:<port>``, its port kept across ``stop`` and ``start``."""

    def __init__(self) -> None:
        self.port = free_port()
        self._inbox = _Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is None:
            controller = Controller(self._inbox, hostname=HOST, port=self.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[Received]:
        with self._inbox.lock:
            return list(self._inbox.messages)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """The messages once at least ``count`` arrived (a sender may still be on its way)."""
        what = f"{count} message(s) at the SMTP server"
        wait_for(what, lambda: len(self.received) >= count, timeout)
        return self.received

    def settings(self) -> SmtpSettings:
        """The plain values the outbox's sender takes: no TLS on loopback."""
        return SmtpSettings(host=HOST, port=self.port, timeout=10.0, mail_from=MAIL_FROM)

    def airflow_conn_json(self) -> str:
        """``AIRFLOW_CONN_SMTP_DEFAULT`` for this server, as the SMTP provider reads it."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": HOST,
                "port": self.port,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": MAIL_FROM,
                    "timeout": 10,
                },
            }
        )
