"""The demo site's login, end to end in headless Chromium.

The live server runs in this process, so the code the site "sends" is read
from the locmem outbox, just as a user would read it from the SMS.
"""

import re
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from infobip_otp.backends import locmem
from infobip_otp.models import OtpChallenge, PhoneDevice, Status
from tests import browser as browser_setup
from tests.browser import launch_chromium, screenshot
from tests.settings_example import EXAMPLE_SITE

PHONE = "+447400123456"
PASSWORD = "pw-alice-123"


@pytest.fixture
def demo_site(settings):
    for name, value in EXAMPLE_SITE.items():
        setattr(settings, name, value)


# Every database call happens before Playwright starts or after it stops:
# its sync API keeps an asyncio loop registered on this thread, and Django
# would refuse ORM calls made inside that block as "async unsafe".
@pytest.mark.django_db(transaction=True)
def test_password_then_sms_code_in_a_real_browser(demo_site, live_server, user):
    started = time.perf_counter()
    PhoneDevice.objects.create(user=user, phone_number=PHONE)

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)

            page.goto(f"{live_server.url}/accounts/login/")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.fill("#id_username", "alice")
            page.fill("#id_password", PASSWORD)
            page.get_by_role("button", name="Sign in").click()

            expect(page).to_have_url(re.compile(r"/otp/verify/\?next=%2F$"))
            expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
            expect(page.get_by_text("We sent a code by SMS to +44*******456.")).to_be_visible()
            # Nothing else is reachable yet, so the page links nowhere else.
            expect(page.get_by_role("link")).to_have_count(0)
            shot = screenshot(page, "otp-verify-page.png")
            assert len(locmem.outbox) == 1
            pin = locmem.last_pin(PHONE)

            wrong = "".join(str((int(digit) + 1) % 10) for digit in pin)
            page.fill("input[name=pin]", wrong)
            page.get_by_role("button", name="Verify").click()
            expect(page.get_by_text("The code is not correct.")).to_be_visible()
            expect(page.get_by_text("4 attempts left.")).to_be_visible()

            page.fill("input[name=pin]", pin)
            page.get_by_role("button", name="Verify").click()
            expect(page).to_have_url(f"{live_server.url}/")
            expect(page.get_by_role("heading", name="Welcome, alice")).to_be_visible()
            expect(page.get_by_role("link", name="Admin")).to_be_visible()
        finally:
            browser.close()

    assert shot.stat().st_size > 0
    challenge = OtpChallenge.objects.get()
    assert challenge.status == Status.VERIFIED
    assert challenge.attempts == 2  # the wrong code and the right one
    elapsed = time.perf_counter() - started
    print(f"\nbrowser login test: {elapsed:.2f} s")


def test_a_browser_that_cannot_start_fails_the_test(monkeypatch):
    monkeypatch.setattr(browser_setup, "CHROMIUM", "/nonexistent/chromium")
    with sync_playwright() as playwright, pytest.raises(pytest.fail.Exception) as failure:
        launch_chromium(playwright)
    assert "Chromium could not start from /nonexistent/chromium" in str(failure.value)
