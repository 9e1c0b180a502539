"""Email over SMTP: STARTTLS, implicit TLS or plain (tests), optional login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr

from jitpam.domain.notifications import OutboxMessage, WebhookEndpoint


class SmtpSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        starttls: bool = True,
        implicit_tls: bool = False,
        username: str = "",
        password: str = "",
        timeout: float = 20.0,
    ) -> None:
        self.host, self.port = host, port
        name, address = parseaddr(sender)
        self.sender = formataddr((name, address)) if address else sender
        self.starttls, self.implicit_tls = starttls, implicit_tls
        self.username, self.password = username, password
        self.timeout = timeout

    def compose(self, message: OutboxMessage) -> EmailMessage:
        p = message.payload
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(p["to"])
        if p.get("cc"):
            mail["Cc"] = ", ".join(p["cc"])
        mail["Subject"] = p["subject"]
        mail["Date"] = formatdate(usegmt=True)
        # The same id on every retry, so a receiving system can drop a duplicate.
        mail["Message-ID"] = p["message_id"]
        mail.set_content(p["text"])
        mail.add_alternative(p["html"], subtype="html")
        return mail

    def send(self, message: OutboxMessage, endpoint: WebhookEndpoint | None) -> None:
        del endpoint
        if self.username and not (self.starttls or self.implicit_tls):
            raise RuntimeError("refusing to send the SMTP password over a connection without TLS")
        mail = self.compose(message)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls and not self.implicit_tls:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password)
            refused = smtp.send_message(mail)
        if refused:
            # Some recipients were accepted: sending again would duplicate theirs. Say who not.
            message.last_error = "refused recipients: " + ", ".join(sorted(refused))
