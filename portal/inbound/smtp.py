"""The SMTP listener (aiosmtpd): only the support addresses, 250 only once stored."""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.controller import Controller
from flask import Flask

from portal.inbound import services, tokens

log = logging.getLogger(__name__)


class InboundHandler:
    def __init__(self, app: Flask) -> None:
        self.app = app

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        with self.app.app_context():
            ours = tokens.is_support_address(address)
        if not ours:
            return "550 5.1.1 No such mailbox here: this server takes mail for support only"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        loop = asyncio.get_running_loop()
        try:
            row_id = await loop.run_in_executor(None, self._store, envelope.content)
        except Exception as exc:
            log.error("SMTP: message not stored: %s", exc)
            return "451 4.3.0 Could not store the message; try again later"
        return f"250 2.0.0 Stored as inbound message {row_id}"

    def _store(self, raw: bytes) -> int:
        with self.app.app_context():
            return services.receive(raw, "smtp").id


def start_listener(app: Flask, host: str, port: int) -> Controller:
    limit = int(app.config["MAIL_MAX_BYTES"])
    controller = Controller(
        InboundHandler(app), hostname=host, port=port,
        server_hostname=app.config["MAIL_MESSAGE_ID_DOMAIN"],
        data_size_limit=limit, decode_data=False,
    )
    controller.start()
    return controller

