"""Per-view enforcement: a DRF permission, a view decorator and a CBV mixin.

The middleware already guards every session login; these are for views that
must also hold for clients that never pass the session step (DRF token or
JWT authentication) or for projects that prefer explicit checks.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from rest_framework.permissions import BasePermission

from . import flow, state
from .exceptions import OtpRequired
from .middleware import refusal


def is_otp_verified(request: Any) -> bool:
    """Whether the request's user passed the second factor (or needs none).

    Session clients are judged by their login state; token clients by
    whether a code was verified for their token. Anything unknown fails closed.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    return flow.login_state(request) in (state.VERIFIED, state.NOT_REQUIRED)


class IsOtpVerified(BasePermission):
    """DRF permission: authenticated and past the SMS code."""

    message = OtpRequired.default_detail
    code = OtpRequired.default_code

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_otp_verified(request)


def _refuse(request: Any) -> Any:
    user = getattr(request, "user", None)
    return refusal(request, login_again=user is None or not user.is_authenticated)


def otp_required(view_func: Any) -> Any:
    """Decorator: the view answers only to users past the SMS code."""

    @wraps(view_func)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_otp_verified(request):
            return _refuse(request)
        return view_func(request, *args, **kwargs)

    return wrapper


class OtpRequiredMixin:
    """Class-based-view mixin with the same rule as :func:`otp_required`."""

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_otp_verified(request):
            return _refuse(request)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
