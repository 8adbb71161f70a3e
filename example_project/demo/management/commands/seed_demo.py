"""Create (or reset) the demo user with a confirmed mobile number."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from infobip_otp.models import PhoneDevice
from infobip_otp.phones import normalize_phone_number


class Command(BaseCommand):
    help = "Create the demo user (demo / demo-password) with a confirmed mobile number."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo-password")
        parser.add_argument("--phone", default="+447400123456", help="A valid mobile number.")
        parser.add_argument("--superuser", action="store_true", default=True)

    def handle(self, *args, username, password, phone, superuser, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        user.set_password(password)
        user.email = f"{username}@example.com"
        user.is_staff = user.is_superuser = superuser
        user.save()
        number = normalize_phone_number(phone)
        PhoneDevice.objects.update_or_create(
            user=user, defaults={"phone_number": number, "failure_count": 0, "locked_at": None}
        )
        verb = "Created" if created else "Reset"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} user {username!r} (password {password!r}) with a phone.")
        )
