"""HTML pages of the login step: enter the code (and resend), add or change a phone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import flow, services, state, trusted_devices
from .exceptions import FactorLocked, OtpError, OtpRequired, PhoneNumberError, RateLimited
from .forms import PhoneForm, PinForm
from .phones import mask_phone_number


def safe_next(request: Any) -> str:
    """``next`` from the request if it stays on this site, else LOGIN_REDIRECT_URL."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def challenge_context(challenge: Any) -> dict[str, Any]:
    """What the pages show about a challenge (masked number, time and attempts left)."""
    if challenge is None:
        return {"challenge": None}
    return {
        **services.challenge_summary(challenge),
        "challenge": challenge,
        "masked_phone": challenge.masked_phone,
    }


def hide_secrets(view_class: Any) -> Any:
    """Keep codes and numbers out of error reports (admin mail, DEBUG pages): T32.

    Those reports show the POST data and the local variables of every frame,
    the view's and those of everything it calls.
    """
    view_class = method_decorator(sensitive_variables(), name="dispatch")(view_class)
    hide_post = sensitive_post_parameters("pin", "phone_number", "password")
    return method_decorator(hide_post, name="dispatch")(view_class)


def locked_out(request: Any) -> HttpResponseRedirect:
    """The SMS factor is locked: end the session; staff must clear the lock."""
    logout(request)
    messages.error(request, str(FactorLocked.default_detail))
    return redirect(settings.LOGIN_URL)


@hide_secrets
class VerifyView(View):
    """Enter the code of a pending login; resend is ``action=resend`` on the same form."""

    template_name = "infobip_otp/verify.html"

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not request.user.is_authenticated:
            return redirect(settings.LOGIN_URL)
        current = flow.login_state(request)
        if current == state.ENROLL:
            return redirect("infobip_otp:phone")
        if current != state.PENDING:
            return HttpResponseRedirect(safe_next(request))
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: Any) -> Any:
        try:
            challenge = flow.send_first_login_code(request)
        except FactorLocked:
            return locked_out(request)
        except OtpError as exc:
            messages.error(request, str(exc.detail))
            challenge = flow.login_challenge(request)
        return self.render(request, PinForm(allow_remember=True), challenge)

    def post(self, request: Any) -> Any:
        if request.POST.get("action") == "resend":
            return self.resend(request)
        form = PinForm(request.POST, allow_remember=True)
        if form.is_valid():
            try:
                flow.verify_login_code(request, form.cleaned_data["pin"])
            except FactorLocked:
                return locked_out(request)
            except OtpError as exc:
                form.refuse(str(exc.detail))
            else:
                response = HttpResponseRedirect(safe_next(request))
                if form.cleaned_data.get("remember"):
                    trusted_devices.remember(
                        request, response, request.user, state.get_user_phone(request.user)
                    )
                return response
        return self.render(request, form, flow.login_challenge(request))

    def resend(self, request: Any) -> Any:
        try:
            flow.send_login_code(request)
        except FactorLocked:
            return locked_out(request)
        except RateLimited as exc:
            messages.error(
                request,
                _("Please wait %(seconds)d seconds before asking for another code.")
                % {"seconds": exc.retry_after},
            )
        except OtpError as exc:
            messages.error(request, str(exc.detail))
        else:
            messages.success(request, _("A new code is on its way."))
        query = urlencode({"next": safe_next(request)})
        return HttpResponseRedirect(f"{reverse('infobip_otp:verify')}?{query}")

    def render(self, request: Any, form: PinForm, challenge: Any) -> Any:
        context = {"form": form, "next": safe_next(request), **challenge_context(challenge)}
        return render(request, self.template_name, context)


@hide_secrets
class PhoneView(View):
    """Add a first phone (enrolment) or change it (needs a verified session)."""

    template_name = "infobip_otp/phone.html"

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not request.user.is_authenticated:
            return redirect(settings.LOGIN_URL)
        if flow.login_state(request) == state.PENDING:
            return redirect("infobip_otp:verify")
        if not flow.can_change_phone(request):
            messages.error(request, str(OtpRequired.default_detail))
            return HttpResponseRedirect(safe_next(request))
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: Any) -> Any:
        return self.render(request, PhoneForm(), PinForm(), flow.phone_challenge(request))

    def post(self, request: Any) -> Any:
        phone_form, pin_form = PhoneForm(), PinForm()
        try:
            if "pin" in request.POST:
                pin_form = PinForm(request.POST)
                if pin_form.is_valid():
                    challenge = flow.verify_phone_code(request, pin_form.cleaned_data["pin"])
                    messages.success(
                        request, _("%(phone)s is confirmed.") % {"phone": challenge.masked_phone}
                    )
                    return HttpResponseRedirect(safe_next(request))
            else:
                phone_form = PhoneForm(request.POST)
                if phone_form.is_valid():
                    flow.start_phone_verification(request, phone_form.cleaned_data["phone_number"])
                    return redirect("infobip_otp:phone")
        except FactorLocked:
            return locked_out(request)
        except PhoneNumberError as exc:
            phone_form.add_error("phone_number", str(exc.detail))
        except OtpError as exc:
            target = pin_form if "pin" in request.POST else phone_form
            target.add_error(None, str(exc.detail))
        return self.render(request, phone_form, pin_form, flow.phone_challenge(request))

    def render(self, request: Any, phone_form: Any, pin_form: Any, challenge: Any) -> Any:
        context = {
            "phone_form": phone_form,
            "pin_form": pin_form,
            "current_phone": mask_phone_number(state.get_user_phone(request.user) or ""),
            "next": safe_next(request),
            **challenge_context(challenge),
        }
        return render(request, self.template_name, context)
