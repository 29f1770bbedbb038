"""Optional authentication for ``mltrack server``: a bearer token or HTTP basic auth.

``--auth token`` reads the token from ``MLTRACK_SERVER_TOKEN``; clients send
``Authorization: Bearer <token>`` (MLflow's client does when ``MLFLOW_TRACKING_TOKEN`` is set).
``--auth basic`` reads ``MLTRACK_SERVER_USERNAME`` and ``MLTRACK_SERVER_PASSWORD``; clients
send HTTP basic credentials (MLflow's client: ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``). Secrets come from the environment only, never from the command
line (where ``ps`` would show them). Comparisons take constant time.

Without auth the server only binds to a loopback address; anything else needs
``--auth none --allow-insecure`` spelled out.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.tracking_server.errors import HttpError

TOKEN_ENV = "MLTRACK_SERVER_TOKEN"
USERNAME_ENV = "MLTRACK_SERVER_USERNAME"
PASSWORD_ENV = "MLTRACK_SERVER_PASSWORD"
MODES = ("none", "token", "basic")
MIN_TOKEN_LENGTH = 16
#: Paths answered without credentials: liveness probes and MLflow's capability probe
#: (MLflow's server does the same; neither says anything about the data).
PUBLIC_PATHS = frozenset(
    {"/health", "/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info"}
)


class Unauthenticated(HttpError):
    """Missing or wrong credentials."""

    def __init__(self, challenge: str) -> None:
        super().__init__(
            "Authentication required: send valid credentials (MLFLOW_TRACKING_TOKEN, or "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, for MLflow's client).",
            error_code="UNAUTHENTICATED",
            status=401,
        )
        self.challenge = challenge


@dataclass(frozen=True)
class Auth:
    """How requests authenticate; ``mode`` is ``none``, ``token`` or ``basic``."""

    mode: str = "none"
    token: bytes = b""
    username: bytes = b""
    password: bytes = b""

    def __repr__(self) -> str:  # never print secrets
        return f"Auth(mode={self.mode!r})"

    @classmethod
    def from_env(cls, mode: str, env: Mapping[str, str] | None = None) -> Auth:
        """The configuration for ``mode`` with its secrets read from ``env`` (os.environ)."""
        env = os.environ if env is None else env
        if mode not in MODES:
            raise InvalidParameterValue(f"Unknown --auth {mode!r}; use one of {', '.join(MODES)}.")
        if mode == "token":
            token = env.get(TOKEN_ENV, "")
            if len(token) < MIN_TOKEN_LENGTH:
                raise InvalidParameterValue(
                    f"--auth token needs {TOKEN_ENV} set to a secret of at least "
                    f"{MIN_TOKEN_LENGTH} characters (e.g. the output of "
                    '`python -c "import secrets; print(secrets.token_urlsafe(32))"`).'
                )
            return cls(mode, token=token.encode())
        if mode == "basic":
            user, password = env.get(USERNAME_ENV, ""), env.get(PASSWORD_ENV, "")
            if not user or not password:
                raise InvalidParameterValue(
                    f"--auth basic needs {USERNAME_ENV} and {PASSWORD_ENV} set."
                )
            if ":" in user:
                raise InvalidParameterValue(f"{USERNAME_ENV} must not contain ':'.")
            return cls(mode, username=user.encode(), password=password.encode())
        return cls("none")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @property
    def challenge(self) -> str:
        return 'Bearer realm="mltrack"' if self.mode == "token" else 'Basic realm="mltrack"'

    def check(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The authenticated user name (``""`` for a token), or raise ``Unauthenticated``."""
        if not self.enabled:
            return None
        header = b""
        for name, value in headers:
            if name == b"authorization":
                header = value
                break
        scheme, _, credentials = header.strip().partition(b" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if self.mode == "token" and scheme == b"bearer":
            if hmac.compare_digest(credentials, self.token):
                return ""
        elif self.mode == "basic" and scheme == b"basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            user, _, password = decoded.partition(b":")
            # both compared whole, so the time does not tell which one was wrong
            user_ok = hmac.compare_digest(user, self.username)
            password_ok = hmac.compare_digest(password, self.password)
            if user_ok & password_ok:
                return user.decode("utf-8", "replace")
        raise Unauthenticated(self.challenge)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: Auth, allow_insecure: bool) -> None:
    """Refuse to serve without authentication on an address other machines can reach."""
    if auth.enabled or is_loopback(host) or allow_insecure:
        return
    raise InvalidParameterValue(
        f"Refusing to serve on {host} without authentication: anyone who can reach this "
        "address could read and change every run and model. Use --auth token (with "
        f"{TOKEN_ENV}) or --auth basic (with {USERNAME_ENV} / {PASSWORD_ENV}), bind to "
        "127.0.0.1, or pass --auth none --allow-insecure if a proxy in front authenticates."
    )
