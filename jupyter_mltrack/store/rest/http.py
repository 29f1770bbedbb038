"""HTTP calls to an MLflow-protocol tracking server: sessions, retries, auth, errors.

One pooled ``requests.Session`` per host and retry policy. Calls that are safe to repeat
(reads, and writes that are idempotent by nature: log-batch, set-tag, update...) are retried
with exponential backoff on connection errors, read errors, 429 and 5xx. Calls that create
something (a run, an experiment, a model version) are retried only when the request cannot
have reached the server (the connection was never made) or was refused unprocessed (429):
repeating one the server may have handled would create a duplicate.

Configuration comes from the environment variables MLflow clients read:
``MLFLOW_TRACKING_TOKEN`` (bearer token, wins over basic auth),
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (basic auth),
``MLFLOW_TRACKING_INSECURE_TLS`` (skip certificate checks), ``MLFLOW_TRACKING_SERVER_CERT_PATH``
(CA bundle), ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` (client certificate),
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` (seconds). They are read at every call, so a refreshed token is
picked up without reopening the store.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from jupyter_mltrack.exceptions import MlflowException, StoreError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_MAX_RETRIES = 7
DEFAULT_BACKOFF_FACTOR = 1.0
DEFAULT_TIMEOUT_S = 120.0
BACKOFF_MAX_S = 60.0
# The first contact with a host: a short probe, so a wrong URL fails in seconds, not minutes.
_PROBE_TIMEOUT_S = 5.0


T = TypeVar("T")


class ServerUnreachable(StoreError):
    """The tracking server could not be reached (refused, unknown host, TLS or timeout)."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise MlflowException(f"{name} must be a number, got {text!r}.") from None
    if value < 0 or math.isnan(value):
        raise MlflowException(f"{name} must be >= 0, got {text!r}.")
    return value


def auth_headers() -> dict[str, str]:
    """``Authorization`` from the environment: a bearer token, else basic auth, else nothing."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password is not None:
        import base64

        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    return {}


def _verify() -> bool | str:
    if _env_flag("MLFLOW_TRACKING_INSECURE_TLS"):
        if os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            raise MlflowException(
                "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both "
                "set; unset one of them (the first skips certificate checks, the second "
                "checks against a CA bundle)."
            )
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def _quiet_insecure(host: str) -> None:
    """The user opted out of certificate checks: no warning per request, for this host only."""
    import warnings

    from urllib3.exceptions import InsecureRequestWarning

    warnings.filterwarnings(
        "ignore",
        message=f"Unverified HTTPS request is being made to host '{host}'",
        category=InsecureRequestWarning,
    )


def _retry_settings() -> tuple[int, float]:
    """(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR), read at each call."""
    max_retries = int(_env_number("MLFLOW_HTTP_REQUEST_MAX_RETRIES", DEFAULT_MAX_RETRIES))
    return max_retries, _env_number("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", DEFAULT_BACKOFF_FACTOR)


def _pause(backoff: float, attempt: int) -> None:
    """Sleep before retry ``attempt + 1`` our own loops make (urllib3's backoff, same cap)."""
    time.sleep(min(BACKOFF_MAX_S, backoff * 2**attempt))


def public_url(url: str) -> str:
    """``url`` without credentials embedded in it (for messages)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _retry(max_retries: int, backoff: float, repeatable: bool) -> Retry:
    if repeatable:
        return Retry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            allowed_methods=None,  # every method: only repeatable calls use this policy
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff,
            backoff_max=BACKOFF_MAX_S,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
    # A create: retry only where the server cannot have acted on it. A refused connection or a
    # connect timeout never delivered the request; 429 is a refusal before any processing.
    return Retry(
        total=max_retries,
        connect=max_retries,
        read=False,
        status=max_retries,
        other=0,
        allowed_methods=None,
        status_forcelist=frozenset({429}),
        backoff_factor=backoff,
        backoff_max=BACKOFF_MAX_S,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


class HttpClient:
    """JSON calls to one tracking server (``base_url`` = the tracking URI)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.display_url = public_url(self.base_url)
        self._sessions: dict[tuple[Any, ...], requests.Session] = {}
        self._lock = threading.Lock()
        self._reached = False
        self._quieted = False

    # -- sessions -------------------------------------------------------------------------
    def _session(self, repeatable: bool, max_retries: int, backoff: float) -> requests.Session:
        key = (repeatable, max_retries, backoff)
        session = self._sessions.get(key)
        if session is None:
            with self._lock:
                session = self._sessions.get(key)
                if session is None:
                    session = requests.Session()
                    adapter = HTTPAdapter(
                        max_retries=_retry(max_retries, backoff, repeatable),
                        pool_connections=4,
                        pool_maxsize=16,
                    )
                    session.mount("http://", adapter)
                    session.mount("https://", adapter)
                    from jupyter_mltrack import __version__

                    session.headers["User-Agent"] = f"jupyter-mltrack/{__version__}"
                    self._sessions[key] = session
        return session

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()

    # -- calls ----------------------------------------------------------------------------
    def call(
        self,
        method: str,
        endpoint: str,
        body: Mapping[str, Any] | None = None,
        *,
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """Call ``endpoint`` (e.g. ``/api/2.0/mlflow/runs/get``) and return the JSON answer.

        GET sends ``body`` as query parameters, other methods as a JSON body. An error answer
        is raised as the matching ``MlflowException`` subclass.
        """
        response = self.request(method, endpoint, body, repeatable=repeatable)
        return self._json(response, endpoint)

    def request(
        self,
        method: str,
        endpoint: str,
        body: Mapping[str, Any] | None = None,
        *,
        repeatable: bool = True,
        raw: Any = None,
        stream: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """The raw response of a call (errors already raised); ``raw`` sends bytes/a file."""
        if not self._reached:
            self._probe()
        max_retries, backoff = _retry_settings()
        timeout = _env_number("MLFLOW_HTTP_REQUEST_TIMEOUT", DEFAULT_TIMEOUT_S) or None
        session = self._session(repeatable, max_retries, backoff)
        headers = auth_headers()
        if extra_headers:
            headers.update(extra_headers)
        verify = _verify()
        if verify is False and not self._quieted:
            _quiet_insecure(urlsplit(self.base_url).hostname or "")
            self._quieted = True
        kwargs: dict[str, Any] = {
            "headers": headers,
            "timeout": timeout,
            "verify": verify,
            "stream": stream,
        }
        client_cert = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
        if client_cert:
            kwargs["cert"] = client_cert
        method = method.upper()
        if raw is not None:
            kwargs["data"] = raw
            kwargs["params"] = body
        elif method == "GET":
            kwargs["params"] = _query(body)
        elif body is not None:
            kwargs["data"] = _dumps(body)
            headers["Content-Type"] = "application/json"
        url = self.base_url + endpoint
        # urllib3's retries end with the answer's headers; an answer cut after them (the
        # server died mid-reply) is retried here, for calls that are safe to repeat.
        resendable = raw is None or isinstance(raw, (bytes, bytearray))
        for attempt in range(max_retries + 1):
            try:
                response = self._send(session, method, url, endpoint, repeatable, kwargs)
                break
            except requests.exceptions.ChunkedEncodingError as err:
                if not repeatable or not resendable:
                    raise MlflowException(
                        f"The tracking server at {self.display_url} cut its answer to {method} "
                        f"{endpoint} short ({_reason(err)}). The call was not repeated because "
                        "the server may have acted on it; check before trying again."
                    ) from None
                if attempt == max_retries:
                    raise ServerUnreachable(
                        f"The tracking server at {self.display_url} cut its answer to {method} "
                        f"{endpoint} short {max_retries + 1} times ({_reason(err)}); "
                        "try again later."
                    ) from None
                _pause(backoff, attempt)
        if response.status_code >= 400:
            raise self._error(response, method, endpoint)
        return response

    #: what reading a streamed body raises when the connection breaks mid-way
    CUT_SHORT = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)

    def read_streamed(self, endpoint: str, consume: Callable[[requests.Response], T]) -> T:
        """``GET endpoint`` streamed and handed to ``consume``; when the body is cut short (the
        server died mid-download, the connection dropped) the whole GET starts again, up to
        ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` times, and then fails with a clear error.
        ``consume`` must start from scratch on each call."""
        max_retries, backoff = _retry_settings()
        for attempt in range(max_retries + 1):
            response = self.request("GET", endpoint, stream=True)
            try:
                return consume(response)
            except self.CUT_SHORT as err:
                if attempt == max_retries:
                    raise self.download_cut_short(endpoint, err, max_retries + 1) from None
            finally:
                response.close()
            _pause(backoff, attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    def download_cut_short(self, endpoint: str, err: BaseException, times: int = 1) -> StoreError:
        """The error for a download whose body stopped coming (``times`` attempts)."""
        how_often = f" {times} times" if times > 1 else ""
        return ServerUnreachable(
            f"Downloading {endpoint} from {self.display_url} was cut short{how_often} "
            f"({_reason(err)}); try again later."
        )

    def _send(
        self,
        session: requests.Session,
        method: str,
        url: str,
        endpoint: str,
        repeatable: bool,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """One request (with urllib3's retries); connection failures become clear errors."""
        timeout = kwargs["timeout"]
        try:
            return session.request(method, url, **kwargs)
        except requests.exceptions.SSLError as err:
            raise ServerUnreachable(self._tls_message(err)) from None
        except requests.exceptions.ConnectTimeout as err:
            raise ServerUnreachable(self._unreachable_message(err)) from None
        except requests.exceptions.ConnectionError as err:
            if repeatable or _never_sent(err):
                raise ServerUnreachable(self._unreachable_message(err)) from None
            raise MlflowException(
                f"The tracking server at {self.display_url} dropped the connection during "
                f"{method} {endpoint} ({_reason(err)}). The call was not repeated because it "
                "creates something and the server may have done so already; check before "
                "trying again."
            ) from None
        except requests.exceptions.Timeout:
            raise MlflowException(
                f"The tracking server at {self.display_url} did not answer {method} {endpoint} "
                f"within {timeout:g} s (MLFLOW_HTTP_REQUEST_TIMEOUT)."
            ) from None

    def _probe(self) -> None:
        """One quick request before the first call, so a wrong URL fails fast and clearly.

        Any HTTP answer counts (even 401 or 404): only a failure to connect is an error.
        """
        session = self._session(True, 1, 0.2)
        verify = _verify()
        if verify is False and not self._quieted:
            _quiet_insecure(urlsplit(self.base_url).hostname or "")
            self._quieted = True
        try:
            session.get(
                self.base_url + "/health",
                timeout=_PROBE_TIMEOUT_S,
                verify=verify,
                headers=auth_headers(),
                cert=os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
            ).close()
        except requests.exceptions.SSLError as err:
            raise ServerUnreachable(self._tls_message(err)) from None
        except requests.exceptions.RequestException as err:
            raise ServerUnreachable(self._unreachable_message(err)) from None
        self._reached = True

    # -- errors ---------------------------------------------------------------------------
    def _unreachable_message(self, err: BaseException) -> str:
        return (
            f"Cannot reach the tracking server at URL: {self.display_url} ({_reason(err)}). "
            "Is `mltrack server` (or `mlflow server`) running there, and is the URL right? "
            "Check set_tracking_uri(...) / MLTRACK_TRACKING_URI / MLFLOW_TRACKING_URI."
        )

    def _tls_message(self, err: BaseException) -> str:
        return (
            f"TLS handshake with the tracking server at {self.display_url} failed "
            f"({_reason(err)}). If the server uses a private CA, set "
            "MLFLOW_TRACKING_SERVER_CERT_PATH to its CA bundle; to skip certificate checks "
            "(trusted networks only) set MLFLOW_TRACKING_INSECURE_TLS=true."
        )

    def _json(self, response: requests.Response, endpoint: str) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise MlflowException(
                f"The server at {self.display_url} answered {endpoint} with something that is "
                f"not JSON ({_snippet(response)}). Is the tracking URI an MLflow-protocol "
                "tracking server (not a login page or a proxy)?"
            ) from None
        if not isinstance(data, dict):
            raise MlflowException(f"Unexpected answer from {self.display_url}{endpoint}: {data!r}")
        return data

    def _error(self, response: requests.Response, method: str, endpoint: str) -> MlflowException:
        status = response.status_code
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and ("error_code" in body or "message" in body):
            from jupyter_mltrack.store.rest.protocol import exception_from_error

            return exception_from_error(status, body)
        where = f"{method} {self.display_url}{endpoint}"
        if status in (401, 403):
            return MlflowException(
                f"The tracking server refused {where} with HTTP {status} "
                f"({_snippet(response)}). Set MLFLOW_TRACKING_TOKEN (bearer token) or "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth).",
                error_code="PERMISSION_DENIED" if status == 403 else "UNAUTHENTICATED",
            )
        if status == 404:
            return MlflowException(
                f"{where} is not a route of this server (HTTP 404). Is the tracking URI the "
                "server's root URL (without /api/...), and does it speak the MLflow protocol?",
                error_code="ENDPOINT_NOT_FOUND",
            )
        if status in RETRY_STATUSES:
            return MlflowException(
                f"The tracking server failed {where} with HTTP {status} "
                f"({_snippet(response)}) after retrying; try again later.",
                error_code="TEMPORARILY_UNAVAILABLE" if status != 500 else "INTERNAL_ERROR",
            )
        return MlflowException(
            f"The tracking server answered {where} with HTTP {status}: {_snippet(response)}",
            error_code="BAD_REQUEST" if 400 <= status < 500 else "INTERNAL_ERROR",
        )


def _query(body: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters: lists repeat their key, booleans are ``true``/``false``."""
    if body is None:
        return None
    out: dict[str, Any] = {}
    for key, value in body.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = value
    return out


def _dumps(body: Mapping[str, Any]) -> str:
    # Protobuf JSON spells non-finite floats as strings; bare NaN is not JSON.
    return json.dumps(body, default=str, allow_nan=True)


def _never_sent(err: BaseException) -> bool:
    """Whether a connection error happened before the request could reach the server."""
    from urllib3.exceptions import NewConnectionError

    seen: set[int] = set()
    stack: list[Any] = [err]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return False


def _reason(err: BaseException) -> str:
    """The innermost useful cause of a requests/urllib3 error, in one short line."""
    inner: Any = err
    for _ in range(6):
        nxt = getattr(inner, "reason", None)
        if nxt is None and getattr(inner, "args", None):
            first = inner.args[0]
            nxt = first if isinstance(first, BaseException) else None
        if nxt is None or nxt is inner:
            break
        inner = nxt
    text = str(inner)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    return text if len(text) < 200 else text[:200] + "..."


def _snippet(response: requests.Response) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    if not text:
        return f"HTTP {response.status_code}, empty body"
    return text if len(text) <= 200 else text[:200] + "..."
