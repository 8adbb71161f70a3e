"""The Infobip 2FA HTTP client: one pooled session, typed answers, typed errors.

Every call has a (connect, read) timeout, is made exactly once, goes through
the circuit breaker (:mod:`infobip_otp.breaker`) and turns every failure into
a :class:`~infobip_otp.exceptions.ProviderError`. What the provider said is
kept, redacted, in ``provider_text`` and the ``infobip_otp.client`` log;
users only ever see the generic detail of the error.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import MaxRetryError, NewConnectionError

from . import __version__
from .breaker import CircuitBreaker
from .breaker import breaker as shared_breaker
from .conf import app_settings
from .exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderUnavailable,
)

logger = logging.getLogger("infobip_otp.client")

USER_AGENT = f"infobip-otp/{__version__}"
MALFORMED = "MALFORMED_RESPONSE"
_MAX_RETRY_AFTER = 24 * 3600
_MAX_LOGGED_TEXT = 300
T = TypeVar("T")


# --- Answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentPin:
    """Infobip's answer to a send or resend; empty strings for absent fields."""

    pin_id: str
    to: str
    sms_status: str
    nc_status: str


@dataclass(frozen=True)
class PinVerification:
    """Infobip's answer to a verification; ``None`` for absent fields."""

    pin_id: str | None
    msisdn: str | None
    verified: bool | None
    attempts_remaining: int | None
    pin_error: str | None


@dataclass(frozen=True)
class Application:
    """A 2FA application and its configuration (camelCase keys, as Infobip sends them)."""

    application_id: str
    name: str
    enabled: bool
    configuration: dict[str, Any]


@dataclass(frozen=True)
class MessageTemplate:
    """An SMS message template of an application."""

    message_id: str
    application_id: str
    message_text: str | None
    pin_type: str | None
    pin_length: int | None
    sender_id: str | None


@dataclass(frozen=True)
class Verification:
    """One row of the verification status of a number (timestamps as Infobip sends them)."""

    msisdn: str
    verified: bool
    verified_at: int | None
    sent_at: int | None


# --- Session ------------------------------------------------------------------------------

_session: requests.Session | None = None
_session_lock = threading.Lock()


def get_session() -> requests.Session:
    """The process-wide session, created on first use (thread-safe)."""
    global _session
    session = _session
    if session is None:
        with _session_lock:
            if _session is None:
                _session = _new_session()
            session = _session
    return session


def reset_session() -> None:
    """Close the process-wide session; the next call opens a new one (tests, after fork).

    The proxy and CA settings read from the environment are read again too.
    """
    global _session
    with _session_lock:
        session, _session = _session, None
        _environment_settings.cache_clear()
    if session is not None:
        session.close()


def _new_session() -> requests.Session:
    session = requests.Session()
    # Threaded servers share this session: keep up to POOL_SIZE connections
    # to the (single) provider host alive. Retries stay with us, never urllib3.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=app_settings.POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # The API sets no cookies we need, and the jar is the part of a Session
    # that is not safe to share between threads.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    # requests would read the proxy and CA variables from os.environ again on
    # every call, a third of the CPU a call costs; they are read once per base
    # URL instead (``_environment_settings``) and passed with each request.
    session.trust_env = False
    return session


@functools.lru_cache(maxsize=16)
def _environment_settings(base_url: str) -> tuple[tuple[tuple[str, str], ...], str | bool]:
    """The proxies and CA bundle that requests takes from the environment for ``base_url``.

    ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` unless ``NO_PROXY`` names the
    host, and ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``: what a session with
    ``trust_env`` would use, read when the process first calls ``base_url``.
    """
    proxies = requests.utils.get_environ_proxies(base_url)
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return tuple(proxies.items()), verify


class _AppKeyAuth(AuthBase):
    """``Authorization: App <key>``; as an auth object, so ``~/.netrc`` cannot replace it."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"App {self._api_key}"
        return request

    def __repr__(self) -> str:
        return "<App key auth>"


# --- Client -------------------------------------------------------------------------------


class InfobipClient:
    """Calls the Infobip 2FA API; settings are read when the client is made.

    Make one per unit of work (it is cheap: the session is shared). Pass
    ``breaker=None`` for operator tools that must see the real error rather
    than a fast "circuit open".
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | tuple[float, float] | None = None,
        session: requests.Session | None = None,
        breaker: CircuitBreaker | None = shared_breaker,
    ) -> None:
        self.base_url = (app_settings.BASE_URL if base_url is None else base_url).rstrip("/")
        self._api_key = app_settings.API_KEY if api_key is None else api_key
        timeout = app_settings.TIMEOUT if timeout is None else timeout
        self.timeout = tuple(timeout) if isinstance(timeout, list) else timeout
        self.breaker = breaker
        # A session passed in is used as it is configured, environment or not.
        self._environment: dict[str, Any] = {}
        if session is None:
            session = get_session()
            proxies, verify = _environment_settings(self.base_url)
            self._environment = {"proxies": dict(proxies), "verify": verify}
        self.session = session

    def __repr__(self) -> str:
        return f"<InfobipClient {self.base_url}>"

    # PINs.

    def send_pin(
        self, to_digits: str, *, application_id: str, message_id: str, nc_needed: bool = True
    ) -> SentPin:
        """Send a new PIN by SMS to ``to_digits`` (international digits, no ``+``).

        ``nc_needed`` asks Infobip to look the number up first and not send
        to unreachable numbers (Infobip's default).
        """
        body = {"applicationId": application_id, "messageId": message_id, "to": to_digits}
        params = {"ncNeeded": "true" if nc_needed else "false"}
        return self._call("POST", "/2fa/2/pin", "send", _parse_sent_pin, body=body, params=params)

    def resend_pin(self, pin_id: str) -> SentPin:
        """Send the same PIN again (same ``pinId``, TTL and attempts unchanged)."""
        path = f"/2fa/2/pin/{_segment(pin_id)}/resend"
        return self._call("POST", path, "resend", _parse_sent_pin, body={})

    def verify_pin(self, pin_id: str, pin: str) -> PinVerification:
        """Check ``pin`` against ``pin_id``; wrong or expired PINs are answers, not errors."""
        path = f"/2fa/2/pin/{_segment(pin_id)}/verify"
        return self._call("POST", path, "verify", _parse_verification, body={"pin": pin})

    def verification_status(
        self,
        app_id: str,
        msisdn: str,
        *,
        verified: bool | None = None,
        sent: bool | None = None,
    ) -> list[Verification]:
        """The PINs sent to ``msisdn`` in an application, newest first."""
        params = {"msisdn": msisdn}
        for name, value in (("verified", verified), ("sent", sent)):
            if value is not None:
                params[name] = "true" if value else "false"
        path = f"/2fa/2/applications/{_segment(app_id)}/verifications"
        return self._call("GET", path, "verifications", _parse_verifications, params=params)

    # Applications and templates (for ``infobip_otp_setup``).

    def list_applications(self) -> list[Application]:
        """Every 2FA application of the account."""
        return self._call(
            "GET", "/2fa/2/applications", "applications", _list_of(_parse_application)
        )

    def create_application(
        self, name: str, configuration: Mapping[str, Any], enabled: bool = True
    ) -> Application:
        """Create an application; omitted configuration fields get Infobip's defaults."""
        body = {"name": name, "enabled": enabled, "configuration": dict(configuration)}
        return self._call(
            "POST", "/2fa/2/applications", "applications", _parse_application, body=body
        )

    def update_application(
        self, app_id: str, *, name: str, configuration: Mapping[str, Any], enabled: bool = True
    ) -> Application:
        """Replace an application: Infobip resets omitted configuration fields to defaults."""
        body = {"name": name, "enabled": enabled, "configuration": dict(configuration)}
        path = f"/2fa/2/applications/{_segment(app_id)}"
        return self._call("PUT", path, "applications", _parse_application, body=body)

    def list_templates(self, app_id: str) -> list[MessageTemplate]:
        """The message templates of an application."""
        path = f"/2fa/2/applications/{_segment(app_id)}/messages"
        return self._call("GET", path, "messages", _list_of(_parse_template))

    def create_template(
        self,
        app_id: str,
        *,
        message_text: str,
        pin_length: int,
        pin_type: str = "NUMERIC",
        sender_id: str | None = None,
    ) -> MessageTemplate:
        """Create an SMS template; ``message_text`` must hold ``{{pin}}``."""
        body = _template_body(message_text, pin_type, pin_length, sender_id)
        path = f"/2fa/2/applications/{_segment(app_id)}/messages"
        return self._call("POST", path, "messages", _parse_template, body=body)

    def update_template(
        self,
        app_id: str,
        msg_id: str,
        *,
        message_text: str | None = None,
        pin_type: str | None = None,
        pin_length: int | None = None,
        sender_id: str | None = None,
    ) -> MessageTemplate:
        """Change the given fields of an SMS template (``None`` leaves a field alone)."""
        body = _template_body(message_text, pin_type, pin_length, sender_id)
        path = f"/2fa/2/applications/{_segment(app_id)}/messages/{_segment(msg_id)}"
        return self._call("PUT", path, "messages", _parse_template, body=body)

    # Transport.

    def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        parse: Callable[[Any], T],
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> T:
        dirty = self.breaker.before_call() if self.breaker is not None else False
        try:
            result = parse(self._exchange(method, path, body, params))
        except ProviderError as exc:
            self._log_failure(method, endpoint, exc)
            if self.breaker is not None:
                if counts_as_outage(exc):
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success(dirty)
            raise
        if self.breaker is not None:
            self.breaker.record_success(dirty)
        return result

    def _exchange(self, method: str, path: str, body: Any, params: Mapping[str, str] | None) -> Any:
        response = self._send(method, self.base_url + path, body, params)
        data = _json(response.content)
        if response.status_code in (200, 201):
            if data is _NOT_JSON:
                raise ProviderUnavailable(http_status=response.status_code, provider_code=MALFORMED)
            return data
        raise self._error(response, data)

    def _send(
        self, method: str, url: str, body: Any, params: Mapping[str, str] | None
    ) -> requests.Response:
        for attempt in (1, 2):
            try:
                return self.session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers={
                        "Accept": "application/json",
                        "Content-Type": "application/json",
                        "User-Agent": USER_AGENT,
                    },
                    auth=_AppKeyAuth(self._api_key),
                    timeout=self.timeout,
                    allow_redirects=False,
                    **self._environment,
                )
            # "from None": the requests exception's text holds the URL, and with
            # it a pinId or an msisdn; provider_text names the failure instead.
            except requests.Timeout as exc:
                raise ProviderUnavailable(
                    provider_code="TIMEOUT", provider_text=_transport_failure(exc)
                ) from None
            except requests.ConnectionError as exc:
                # Never retry a send, resend or verify: once the request may have
                # reached Infobip, a retry can mean a second SMS (cost, confusion)
                # or a second verification attempt. A refused connection (or a
                # failed DNS lookup) is the one failure where nothing was sent,
                # so one immediate retry is safe; it helps past a restarting
                # load balancer. A connect *timeout* is not retried: that would
                # double the user's wait.
                if attempt == 1 and _refused_before_sending(exc):
                    continue
                raise ProviderUnavailable(
                    provider_code="CONNECTION_ERROR", provider_text=_transport_failure(exc)
                ) from None
            except requests.RequestException as exc:
                raise ProviderUnavailable(
                    provider_code="REQUEST_FAILED", provider_text=_transport_failure(exc)
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, response: requests.Response, data: Any) -> ProviderError:
        status = response.status_code
        code, text, validation_errors = _service_exception(data)
        known = (self._api_key,)
        kwargs: dict[str, Any] = {
            "http_status": status,
            "provider_code": redact(code, known),
            "provider_text": redact(text, known),
        }
        if status == 400:
            return ProviderRequestError(
                validation_errors=_redact_validation_errors(validation_errors, known), **kwargs
            )
        if status in (401, 403):
            return ProviderAuthError(**kwargs)
        if status == 404:
            return ProviderNotFound(**kwargs)
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            return ProviderRateLimited(retry_after=retry_after, **kwargs)
        if 400 <= status < 500:
            return ProviderRequestError(**kwargs)
        # 5xx, and redirects or other 2xx the API never sends.
        return ProviderUnavailable(**kwargs)

    @staticmethod
    def _log_failure(method: str, endpoint: str, exc: ProviderError) -> None:
        # Auth errors are a configuration problem an operator must fix now.
        level = logging.ERROR if isinstance(exc, ProviderAuthError) else logging.WARNING
        logger.log(
            level,
            "infobip %s %s failed: status=%s messageId=%s text=%s",
            method,
            endpoint,
            exc.http_status if exc.http_status is not None else "-",
            exc.provider_code or "-",
            exc.provider_text or "-",
            extra={
                "provider_endpoint": endpoint,
                "provider_status": exc.http_status,
                "provider_code": exc.provider_code,
            },
        )


def counts_as_outage(exc: ProviderError) -> bool:
    """Whether an error counts toward opening the circuit breaker.

    Timeouts, connection errors, 5xx and malformed answers do. So do 401/403:
    a wrong or revoked key fails every request alike, and hammering Infobip
    with it for every login is what the breaker exists to stop (users get
    the same 503 either way; the log says "auth" at ERROR level). 400, 404
    and 429 do not: they answer one request (one number, one PIN), and one
    abusive user must not open the breaker for everyone.
    """
    return isinstance(exc, (ProviderUnavailable, ProviderAuthError))


# --- Redaction ----------------------------------------------------------------------------

_AUTH_VALUE = re.compile(r"\b(App|Basic|Bearer|IBSSO)\s+\S+", re.IGNORECASE)
# Phone numbers and PINs: six or more digits, even with separators in between.
_DIGITS = re.compile(r"\+?\d(?:[\s().-]{0,2}\d){5,}")
# Keys and tokens: long runs of letters, digits and dashes.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` fit for a log: no key, token, number or PIN, no newline, bounded length.

    Each value of ``secrets`` (the API key) is removed wherever it appears;
    credentials after ``App``/``Basic``/``Bearer``, runs of 32+ token
    characters and sequences of six or more digits are masked.
    """
    if not text:
        return ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[key]")
    # Bound the work before the regular expressions (an HTML error page can be large).
    truncated = len(text) > _MAX_LOGGED_TEXT
    text = text[:_MAX_LOGGED_TEXT]
    text = _AUTH_VALUE.sub(lambda match: f"{match.group(1)} [key]", text)
    text = _TOKEN.sub("[token]", text)
    text = _DIGITS.sub("[digits]", text)
    text = _CONTROL.sub(" ", text)
    return text + "..." if truncated else text


def _redact_validation_errors(
    errors: Mapping[str, list[str]], secrets: Iterable[str]
) -> dict[str, list[str]]:
    secrets = tuple(secrets)
    return {
        redact(name, secrets): [redact(message, secrets) for message in messages]
        for name, messages in errors.items()
    }


# --- Parsing ------------------------------------------------------------------------------

_NOT_JSON = object()


def _json(content: bytes) -> Any:
    """The decoded body, whatever the Content-Type says (Infobip's is not reliable)."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _service_exception(data: Any) -> tuple[str, str, dict[str, list[str]]]:
    """``(messageId, text, validationErrors)`` of a ``requestError.serviceException``."""
    try:
        details = data["requestError"]["serviceException"]
    except (KeyError, TypeError, IndexError):
        return "", "", {}
    if not isinstance(details, dict):
        return "", "", {}
    code = details.get("messageId")
    text = details.get("text")
    raw_errors = details.get("validationErrors")
    errors: dict[str, list[str]] = {}
    if isinstance(raw_errors, dict):
        for name, messages in raw_errors.items():
            if isinstance(messages, str):
                messages = [messages]
            if isinstance(messages, list):
                errors[str(name)] = [str(message) for message in messages]
    return (
        code if isinstance(code, str) else "",
        text if isinstance(text, str) else "",
        errors,
    )


def _retry_after(value: str | None) -> int | None:
    """Whole seconds from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = math.ceil((when - datetime.now(timezone.utc)).total_seconds())
    return min(max(seconds, 1), _MAX_RETRY_AFTER)


def _fields(data: Any, types: Mapping[str, type], required: Iterable[str] = ()) -> dict[str, Any]:
    """The typed fields of a JSON object; a wrong type or a missing required field is malformed.

    Absent optional fields are ``None``. Semantics (is this answer plausible?)
    are for the caller; this only guarantees the shape.
    """
    if not isinstance(data, dict):
        raise _malformed()
    fields = {}
    for name, kind in types.items():
        value = data.get(name)
        if value is None:
            if name in required:
                raise _malformed()
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _malformed()
        fields[name] = value
    return fields


def _malformed() -> ProviderUnavailable:
    return ProviderUnavailable(http_status=200, provider_code=MALFORMED)


def _list_of(parse: Callable[[Any], T]) -> Callable[[Any], list[T]]:
    def parse_list(data: Any) -> list[T]:
        if not isinstance(data, list):
            raise _malformed()
        return [parse(item) for item in data]

    return parse_list


def _parse_sent_pin(data: Any) -> SentPin:
    fields = _fields(data, {"pinId": str, "to": str, "smsStatus": str, "ncStatus": str})
    return SentPin(
        pin_id=fields["pinId"] or "",
        to=fields["to"] or "",
        sms_status=fields["smsStatus"] or "",
        nc_status=fields["ncStatus"] or "",
    )


def _parse_verification(data: Any) -> PinVerification:
    fields = _fields(
        data,
        {"pinId": str, "msisdn": str, "verified": bool, "attemptsRemaining": int, "pinError": str},
    )
    return PinVerification(
        pin_id=fields["pinId"],
        msisdn=fields["msisdn"],
        verified=fields["verified"],
        attempts_remaining=fields["attemptsRemaining"],
        pin_error=fields["pinError"],
    )


def _parse_verifications(data: Any) -> list[Verification]:
    rows = _fields(data, {"verifications": list}, required=("verifications",))["verifications"]
    verifications = []
    for row in rows:
        fields = _fields(
            row,
            {"msisdn": str, "verified": bool, "verifiedAt": int, "sentAt": int},
            required=("msisdn", "verified"),
        )
        verifications.append(
            Verification(
                msisdn=fields["msisdn"],
                verified=fields["verified"],
                verified_at=fields["verifiedAt"],
                sent_at=fields["sentAt"],
            )
        )
    return verifications


def _parse_application(data: Any) -> Application:
    fields = _fields(
        data,
        {"applicationId": str, "name": str, "enabled": bool, "configuration": dict},
        required=("applicationId",),
    )
    return Application(
        application_id=fields["applicationId"],
        name=fields["name"] or "",
        enabled=fields["enabled"] is not False,
        configuration=fields["configuration"] or {},
    )


def _parse_template(data: Any) -> MessageTemplate:
    fields = _fields(
        data,
        {
            "messageId": str,
            "applicationId": str,
            "messageText": str,
            "pinType": str,
            "pinLength": int,
            "senderId": str,
        },
        required=("messageId",),
    )
    return MessageTemplate(
        message_id=fields["messageId"],
        application_id=fields["applicationId"] or "",
        message_text=fields["messageText"],
        pin_type=fields["pinType"],
        pin_length=fields["pinLength"],
        sender_id=fields["senderId"],
    )


def _template_body(
    message_text: str | None, pin_type: str | None, pin_length: int | None, sender_id: str | None
) -> dict[str, Any]:
    body = {
        "messageText": message_text,
        "pinType": pin_type,
        "pinLength": pin_length,
        "senderId": sender_id,
    }
    return {name: value for name, value in body.items() if value is not None}


def _segment(value: str) -> str:
    """A path segment: ids come from Infobip or settings, but never build paths unquoted."""
    return quote(value, safe="")


def _reason(exc: requests.RequestException) -> Any:
    """The urllib3 (or socket) error under a requests exception, if any."""
    reason = exc.args[0] if exc.args else None
    return reason.reason if isinstance(reason, MaxRetryError) else reason


def _refused_before_sending(exc: requests.ConnectionError) -> bool:
    """Whether the connection failed before a single byte of the request left."""
    return isinstance(_reason(exc), (NewConnectionError, ConnectionRefusedError))


def _transport_failure(exc: requests.RequestException) -> str:
    """A log-safe name for a transport failure, e.g. ``ConnectionError/ProtocolError``."""
    names = [type(exc).__name__]
    reason = _reason(exc)
    while isinstance(reason, BaseException) and len(names) < 4:
        names.append(type(reason).__name__)
        reason = next((arg for arg in reason.args if isinstance(arg, BaseException)), None)
    return "/".join(names)
