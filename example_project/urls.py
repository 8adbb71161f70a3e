from django.apps import apps
from django.contrib import admin
from django.urls import include, path

from example_project.demo import views

urlpatterns = [
    path("", views.home, name="home"),
    path("spa/", views.spa, name="spa"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("otp/", include("infobip_otp.urls")),
]

if apps.is_installed("drf_spectacular"):
    from drf_spectacular.views import SpectacularAPIView

    urlpatterns.append(path("api/schema/", SpectacularAPIView.as_view(), name="schema"))
