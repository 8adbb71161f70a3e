from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InfobipOtpConfig(AppConfig):
    name = "infobip_otp"
    verbose_name = _("SMS one-time passwords")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, notifications, receivers  # noqa: F401  (registers them)
