"""pytest fixtures that run the real ``InfobipBackend`` against the local simulator.

Enable them in a ``conftest.py`` (pytest-django provides ``settings``)::

    pytest_plugins = ["infobip_otp.testing.pytest_plugin"]

``infobip_simulator`` is a started :class:`~infobip_otp.testing.simulator.SimulatorServer`
with an application and an SMS template configured like your settings, and
``INFOBIP_OTP_*`` pointing at it; ``infobip_simulator_server`` is the same
server without the application, for tests that provision it themselves.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from ..breaker import breaker
from ..client import reset_session
from ..conf import app_settings
from ..provisioning import desired_configuration, desired_template
from .simulator import SimulatorServer

INFOBIP_BACKEND = "infobip_otp.backends.infobip.InfobipBackend"
#: (connect, read) seconds: short, so a hung provider costs a test one second.
TEST_TIMEOUT = (0.5, 1.0)


def reset_client_state() -> None:
    """Forget the pooled HTTP session and the circuit breaker's state."""
    reset_session()
    breaker.reset()


@pytest.fixture
def infobip_simulator_server(settings: Any) -> Iterator[SimulatorServer]:
    """A simulator on a free port, with the base URL, API key and timeout set for it."""
    server = SimulatorServer(api_key=f"test-{secrets.token_hex(16)}").start()
    settings.INFOBIP_OTP_BASE_URL = server.url
    settings.INFOBIP_OTP_API_KEY = server.api_key
    settings.INFOBIP_OTP_TIMEOUT = TEST_TIMEOUT
    reset_client_state()
    try:
        yield server
    finally:
        server.stop()
        reset_client_state()


@pytest.fixture
def infobip_simulator(
    infobip_simulator_server: SimulatorServer, settings: Any
) -> Iterator[SimulatorServer]:
    """The simulator with an application and template like ``infobip_otp_setup`` makes.

    The settings select the Infobip backend and carry the new ids.
    """
    server = infobip_simulator_server
    application = server.create_application(
        app_settings.APPLICATION_NAME, **desired_configuration()
    )
    template = desired_template()
    message = server.create_template(
        application["applicationId"],
        message_text=template["messageText"],
        pin_type=template["pinType"],
        pin_length=template["pinLength"],
        sender_id=template.get("senderId"),
    )
    settings.INFOBIP_OTP_BACKEND = INFOBIP_BACKEND
    settings.INFOBIP_OTP_APPLICATION_ID = application["applicationId"]
    settings.INFOBIP_OTP_MESSAGE_ID = message["messageId"]
    yield server
