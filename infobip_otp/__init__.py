"""SMS one-time-password second factor for ``django.contrib.auth``, via Infobip 2FA."""

__version__ = "0.1.0.dev0"
