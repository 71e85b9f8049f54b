"""E-mail sink over SMTP (STARTTLS by default, implicit TLS or plain for a local relay); one message per
alert. A password is read from an environment variable and is never sent over an unencrypted link."""

from __future__ import annotations

import builtins
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from bastion.monitor.sinks.interface import AlertSink, Attempt, SinkConfig

__all__ = ["EmailSink", "EmailSinkConfig", "build_message"]


class EmailSinkConfig(SinkConfig):
    type: str = "email"
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    sender: str
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password_env: str | None = None
    subject_prefix: str = "[bastion]"

    @model_validator(mode="after")
    def _no_plain_passwords(self) -> EmailSinkConfig:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both 'username' and 'password_env', or neither")
        if self.username and self.security == "none":
            raise ValueError("SMTP login needs security 'starttls' or 'ssl'; a password is never sent in clear")
        for addr in [self.sender, *self.to]:
            if "@" not in addr or any(c in addr for c in "\r\n"):
                raise ValueError(f"not an e-mail address: {addr!r}")
        return self


def build_message(alert: dict[str, Any], cfg: EmailSinkConfig) -> EmailMessage:
    """The message for one alert: subject names severity, model and rule; the body has the details."""
    msg = EmailMessage()
    subject = f"{cfg.subject_prefix} {str(alert.get('severity')).upper()} {alert.get('model')}: {alert.get('rule')}"
    msg["Subject"] = " ".join(subject.split())  # no header injection through a model name
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg["Message-ID"] = make_msgid(idstring=str(alert.get("id", "")), domain="bastion.local")
    lines = [str(alert.get("message")), ""]
    for k in ("model", "rule", "signal", "severity", "window_start", "window_end", "id", "created"):
        if alert.get(k) is not None:
            lines.append(f"{k}: {alert[k]}")
    msg.set_content("\n".join(lines) + "\n")
    return msg


class EmailSink(AlertSink):
    type: ClassVar[str] = "email"
    config_model: ClassVar[builtins.type[SinkConfig]] = EmailSinkConfig
    config: EmailSinkConfig

    def check(self) -> str | None:
        env = self.config.password_env
        if env and not os.environ.get(env):
            return f"SMTP password variable {env} is not set"
        return None

    def send_once(self, alert: dict[str, Any]) -> Attempt:
        cfg = self.config
        try:
            smtp: smtplib.SMTP
            if cfg.security == "ssl":
                smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            with smtp:
                if cfg.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username and cfg.password_env:
                    smtp.login(cfg.username, os.environ.get(cfg.password_env, ""))
                smtp.send_message(build_message(alert, cfg))
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                smtplib.SMTPNotSupportedError) as e:
            return Attempt(False, False, f"{type(e).__name__}: {_short(e)}")
        except smtplib.SMTPResponseException as e:
            return Attempt(False, not 500 <= e.smtp_code < 600, f"SMTP {e.smtp_code}: {_short(e)}")
        except (smtplib.SMTPException, OSError, TimeoutError) as e:
            return Attempt(False, True, f"{type(e).__name__}: {_short(e)}")
        return Attempt(True)


def _short(e: Exception) -> str:
    text = getattr(e, "smtp_error", None)
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    return str(e) or type(e).__name__
