"""URLs of the OTP pages and API; include under a prefix such as ``otp/``."""

from django.urls import include, path

from . import views

app_name = "infobip_otp"

urlpatterns = [
    path("verify/", views.VerifyView.as_view(), name="verify"),
    path("phone/", views.PhoneView.as_view(), name="phone"),
    path("api/", include("infobip_otp.api.urls")),
]
