"""The demo site (``example_project``) served inside the test run.

Only the settings that differ from ``tests.settings``: the demo's URLs, its
templates (looked up before the test templates) and its login redirects.
Apply them with ``override_settings(**EXAMPLE_SITE)``; the demo app
``example_project.demo`` holds no models or templates, so it need not be
installed for its views to run.
"""

from tests.settings import BASE_DIR, TEMPLATES

EXAMPLE_SITE = {
    "ROOT_URLCONF": "example_project.urls",
    "TEMPLATES": [
        {
            **TEMPLATES[0],
            "DIRS": [BASE_DIR / "example_project" / "templates", *TEMPLATES[0]["DIRS"]],
        }
    ],
    "LOGIN_URL": "login",
    "LOGIN_REDIRECT_URL": "home",
    "LOGOUT_REDIRECT_URL": "login",
    # As in the demo: the single-page demo continues the flow while pending.
    "INFOBIP_OTP_EXEMPT_URLS": ["spa"],
}
