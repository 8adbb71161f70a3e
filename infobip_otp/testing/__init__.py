"""Test helpers for projects using ``infobip_otp``, such as the local Infobip simulator."""
