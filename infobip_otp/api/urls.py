from django.urls import path

from . import views

urlpatterns = [
    path("status/", views.StatusView.as_view(), name="api-status"),
    path("login/", views.LoginView.as_view(), name="api-login"),
    path("send/", views.SendView.as_view(), name="api-send"),
    path("verify/", views.VerifyView.as_view(), name="api-verify"),
    path("phone/", views.PhoneView.as_view(), name="api-phone"),
]
