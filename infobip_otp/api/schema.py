"""OpenAPI annotations, active only when drf-spectacular (the ``openapi`` extra) is installed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

try:
    from drf_spectacular.utils import extend_schema
except ImportError:  # pragma: no cover - exercised only without the extra
    extend_schema = None


def document(
    *,
    summary: str,
    responses: dict[int, Any],
    request: Any = None,
    errors: Iterable[type] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe one endpoint; lists the stable error codes it may answer with."""
    if extend_schema is None:
        return lambda view: view
    codes = ", ".join(
        f"`{error.default_code}` ({error.status_code})" for error in errors  # type: ignore[attr-defined]
    )
    description = f"Error codes: {codes}." if codes else None
    return extend_schema(
        summary=summary, description=description, request=request, responses=responses
    )
