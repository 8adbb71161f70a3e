"""``OtpRequiredMiddleware``: nothing but the OTP pages passes a pending login.

Place it after ``django.contrib.auth.middleware.AuthenticationMiddleware``
(system check ``infobip_otp.E006``). It reads only the session, which Django
loads once per request anyway for ``request.user``: it never touches
``request.user`` nor the database on the way through.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.contrib.auth import logout
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import resolve_url
from django.urls import Resolver404, resolve, reverse

from . import state
from .conf import app_settings
from .exceptions import LoginExpired, OtpRequired

# URL names a pending session may reach besides the ``infobip_otp`` namespace.
ALWAYS_ALLOWED_URL_NAMES = frozenset({"logout"})


class OtpRequiredMiddleware:
    """Redirects (HTML) or answers 401 ``otp_required`` (JSON) for pending logins."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return self.check(request) or self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        response = await sync_to_async(self.check)(request)
        return response or await self.get_response(request)

    def check(self, request: Any) -> Any:
        """A response refusing the request, or None to let it through."""
        current = state.get_state(request)
        # A session signed in before this app was installed: judged once. Its
        # user may be gone or its password changed since: loading the user then
        # flushes the session, and an anonymous session needs no state.
        if (
            current is None
            and AUTH_SESSION_KEY in getattr(request, "session", {})
            and request.user.is_authenticated
        ):
            state.adopt(request)
            current = state.get_state(request)
        if not state.is_incomplete(current):
            return None
        assert current is not None
        if state.has_timed_out(current):
            logout(request)
            return refusal(request, login_again=True, error=LoginExpired())
        if self.is_allowed(request):
            return None
        return refusal(request)

    def is_allowed(self, request: Any) -> bool:
        path = request.path_info
        static_url = getattr(settings, "STATIC_URL", None) or ""
        if static_url.startswith("/") and path.startswith(static_url):
            return True
        try:
            # The URLconf the request will really be routed with (a middleware
            # may have set one per host), not always ROOT_URLCONF.
            match = resolve(path, getattr(request, "urlconf", None))
        except Resolver404:
            return False
        if "infobip_otp" in match.namespaces or match.url_name in ALWAYS_ALLOWED_URL_NAMES:
            return True
        exempt = app_settings.EXEMPT_URLS
        return match.view_name in exempt or any(
            path.startswith(prefix) for prefix in exempt if prefix.startswith("/")
        )


def refusal(request: Any, *, login_again: bool = False, error: OtpRequired | None = None) -> Any:
    """``error`` (401 ``otp_required`` by default) for API clients; otherwise a redirect.

    ``login_again`` sends the browser to ``LOGIN_URL`` instead of the code page;
    the redirect carries a ``next`` that is always a path on this site.
    """
    if wants_json(request) or _is_otp_api(request):
        error = error or OtpRequired()
        return JsonResponse(error.as_dict(), status=error.status_code)
    target = resolve_url(settings.LOGIN_URL) if login_again else reverse("infobip_otp:verify")
    # Only our own path goes into ``next``, so it can never point off-site.
    query = urlencode({"next": request.get_full_path()}) if request.method == "GET" else ""
    return HttpResponseRedirect(f"{target}?{query}" if query else target)


def _is_otp_api(request: Any) -> bool:
    """Our own API answers JSON whatever the client's Accept header says."""
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return "infobip_otp" in match.namespaces and (match.url_name or "").startswith("api-")


def wants_json(request: Any) -> bool:
    """API clients: a JSON body, an XHR header, or an Accept without HTML."""
    if request.content_type == "application/json":
        return True
    if request.headers.get("x-requested-with") == "XMLHttpRequest":
        return True
    accept = request.headers.get("accept", "")
    return "json" in accept and "html" not in accept
