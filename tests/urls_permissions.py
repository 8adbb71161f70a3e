"""URLs of the views defined in ``tests.test_permissions``, plus the usual test URLs."""

from django.urls import path

from tests import urls as test_urls
from tests.test_permissions import MixinView, SecretApi, decorated_view

urlpatterns = [
    path("api/secret/", SecretApi.as_view()),
    path("decorated/", decorated_view),
    path("mixin/", MixinView.as_view()),
    *test_urls.urlpatterns,
]
