"""Staff views of challenges and phones: read-only, numbers masked, no secrets.

django-phone-verify showed live codes in its admin list (SECURITY rule 6).
Here the full number, the PIN digest, the provider PIN id and the session
hash never reach an admin page, and cannot be probed through the search box
or URL filters either. Challenges change only through ``services`` and leave
only through ``infobip_otp_cleanup``.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from django.contrib import admin, messages
from django.contrib.admin import actions
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .exceptions import InvalidPhoneNumber
from .models import OtpChallenge, PhoneDevice
from .phones import parse_phone_number
from .services import remove_phone, unlock_factor

SEARCH_HELP = _("Username, e-mail address, or a complete phone number.")


class MaskedPhoneAdminMixin:
    """Find rows by their full number while pages only ever show it masked.

    A search term that is a whole valid number (E.164, or national for
    ``INFOBIP_OTP_DEFAULT_REGION``) matches ``phone_number`` exactly; any
    other term searches ``search_fields`` (the user) and never the number.
    A partial number therefore matches nothing, so the list cannot confirm
    numbers digit by digit; URL filters on ``secret_fields`` (say
    ``?phone_number__startswith=+4479``) are refused for the same reason.
    """

    secret_fields: tuple[str, ...] = ("phone_number",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        number = _as_phone_number(search_term)
        if number is not None:
            return queryset.filter(phone_number=number), False
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if lookup.split(LOOKUP_SEP, 1)[0] in self.secret_fields:
            return False
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]

    @admin.display(description=_("phone number"))
    def masked_phone(self, obj: OtpChallenge | PhoneDevice) -> str:
        return obj.masked_phone


def _as_phone_number(term: str) -> str | None:
    try:
        number = parse_phone_number(term.strip())
    except InvalidPhoneNumber:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@admin.register(OtpChallenge)
class OtpChallengeAdmin(MaskedPhoneAdminMixin, admin.ModelAdmin):
    """Challenges, read-only: staff with the view permission may open them."""

    secret_fields = ("phone_number", "pin_digest", "provider_pin_id", "session_hash")
    list_display = (
        "short_id",
        "masked_phone",
        "user",
        "purpose",
        "status",
        "attempts_display",
        "sends",
        "created_at",
        "expires_at",
    )
    list_display_links = ("short_id",)
    list_filter = ("status", "purpose", "created_at")
    search_fields = ("user__username", "user__email")
    search_help_text = SEARCH_HELP
    list_select_related = ("user",)
    # Counting a large table on every page load is the slow part of a changelist.
    show_full_result_count = False
    # Newest first through the primary-key index (``created_at`` has none of its own).
    ordering = ("-pk",)
    fields = (
        "public_id",
        "user",
        "masked_phone",
        "purpose",
        "status",
        "attempts",
        "max_attempts",
        "sends",
        "created_at",
        "last_sent_at",
        "expires_at",
        "verified_at",
        "ended_at",
    )
    readonly_fields = fields

    @admin.display(description=_("challenge"))
    def short_id(self, obj: OtpChallenge) -> str:
        return str(obj.public_id)[:8]

    @admin.display(description=_("attempts"))
    def attempts_display(self, obj: OtpChallenge) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LockedListFilter(admin.SimpleListFilter):
    title = _("locked")
    parameter_name = "locked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(locked_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(locked_at__isnull=True)
        return queryset


@admin.register(PhoneDevice)
class PhoneDeviceAdmin(MaskedPhoneAdminMixin, admin.ModelAdmin):
    """Confirmed phones: clear a lockout or remove the phone; numbers are never edited.

    A user changes number by enrolling again (a code to the new number), so
    the admin has no form for it and no "add" page.
    """

    list_display = (
        "masked_phone",
        "user",
        "confirmed_at",
        "last_used_at",
        "failure_count",
        "is_locked",
    )
    list_filter = (LockedListFilter,)
    search_fields = ("user__username", "user__email")
    search_help_text = SEARCH_HELP
    list_select_related = ("user",)
    fields = ("user", "masked_phone", "confirmed_at", "last_used_at", "failure_count", "locked_at")
    readonly_fields = fields
    actions = ("clear_lockout", "delete_selected")

    @admin.display(boolean=True, description=_("locked"), ordering="locked_at")
    def is_locked(self, obj: PhoneDevice) -> bool:
        return obj.is_locked

    @admin.action(permissions=["change"], description=_("Clear lockout"))
    def clear_lockout(self, request: HttpRequest, queryset: QuerySet) -> None:
        cleared = 0
        for device in queryset.select_related("user"):
            cleared += unlock_factor(device.user)
            self.log_change(request, device, "Cleared the SMS lockout.")
        self.message_user(
            request,
            ngettext(
                "Cleared the lockout of %(count)d phone.",
                "Cleared the lockout of %(count)d phones.",
                cleared,
            )
            % {"count": cleared},
            messages.SUCCESS,
        )

    # Django's own delete action, relabelled, for its confirmation page (which
    # posts back to an action of this name); the deletion itself goes through
    # delete_queryset below, so open challenges are ended too.
    @admin.action(permissions=["delete"], description=_("Remove phone (the user enrols again)"))
    def delete_selected(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return actions.delete_selected(self, request, queryset)

    def delete_model(self, request: HttpRequest, obj: PhoneDevice) -> None:
        remove_phone(obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for device in queryset.select_related("user"):
            remove_phone(device.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change permission is what lets staff run "Clear lockout" (asked
        # without an object); a device's own form stays read-only, so a POST
        # to it is refused instead of re-saving fields a login may be updating.
        return obj is None and super().has_change_permission(request)
