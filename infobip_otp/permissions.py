"""Per-view enforcement: a DRF permission, a view decorator and a CBV mixin.

The middleware already guards every session login; these are for views that
must also hold for clients that never pass the session step (DRF token or
JWT authentication) or for projects that prefer explicit checks.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from rest_framework.exceptions import APIException
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


class OtpRequiredAPIError(APIException):
    """:class:`OtpRequired` for DRF: 401 ``{"detail", "code": "otp_required"}``.

    The same answer the middleware gives API clients, so a client recognises
    "enter the code" by one status and code whichever check refused it.
    """

    status_code = OtpRequired.status_code
    default_detail = OtpRequired.default_detail
    default_code = OtpRequired.default_code

    def __init__(self) -> None:
        super().__init__(OtpRequired().as_dict())


class IsOtpVerified(BasePermission):
    """DRF permission: authenticated and past the SMS code.

    Anonymous requests get DRF's usual "not authenticated"; a signed-in user
    without the code gets :class:`OtpRequiredAPIError`.
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        if is_otp_verified(request):
            return True
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            raise OtpRequiredAPIError()
        return False


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
