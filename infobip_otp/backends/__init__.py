"""Pluggable delivery backends, chosen by ``INFOBIP_OTP_BACKEND`` (a dotted path)."""

from __future__ import annotations

from functools import lru_cache

from django.utils.module_loading import import_string

from ..conf import app_settings
from .base import BaseBackend, SentCode, VerifyOutcome

__all__ = ["BaseBackend", "SentCode", "VerifyOutcome", "get_backend"]


def get_backend(path: str | None = None) -> BaseBackend:
    """Return the configured backend instance (one per dotted path and process)."""
    return _load(path or app_settings.BACKEND)


@lru_cache(maxsize=8)
def _load(path: str) -> BaseBackend:
    return import_string(path)()
