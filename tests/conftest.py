import pytest
from django.core.cache import caches

from infobip_otp.backends import locmem


@pytest.fixture(autouse=True)
def _clean_outbox_and_cache():
    locmem.outbox.clear()
    yield
    locmem.outbox.clear()
    for cache in caches.all():
        cache.clear()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123")
