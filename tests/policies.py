"""A callable policy for INFOBIP_OTP_REQUIRED in the tests."""


def staff_only(user):
    return user.is_staff
