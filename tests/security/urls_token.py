"""A project's own ways in, for the bypass tests (SECURITY T16, T25, T27).

Besides the test URLs: DRF's stock token endpoint, a token endpoint that
hands out a new token on every password login, a "sign in with a code sent
by e-mail" view that calls ``login()`` itself, and an API guarded by
``IsOtpVerified``.
"""

from django.contrib.auth import get_user_model, login
from django.core import signing
from django.http import HttpResponse, HttpResponseBadRequest
from django.urls import path
from django.views.decorators.http import require_POST
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.response import Response
from rest_framework.views import APIView

from infobip_otp.permissions import IsOtpVerified
from tests import urls as test_urls

LOGIN_CODE_SALT = "tests.security.login-by-code"
LOGIN_CODE_MAX_AGE = 600


def login_code(user):
    """What the project would e-mail: a signed, short-lived code naming the user."""
    return signing.dumps(user.pk, salt=LOGIN_CODE_SALT)


@require_POST
def sign_in_with_code(request):
    """Login by a code from an e-mail (as allauth's "login by code"): calls ``login()``."""
    try:
        user_id = signing.loads(
            request.POST.get("code", ""), salt=LOGIN_CODE_SALT, max_age=LOGIN_CODE_MAX_AGE
        )
    except signing.BadSignature:
        return HttpResponseBadRequest("bad code")
    user = get_user_model().objects.get(pk=user_id)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("signed in")


class FreshTokenView(APIView):
    """A token per password login: the previous token of the user stops working."""

    authentication_classes = []
    permission_classes = []

    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        Token.objects.filter(user=user).delete()
        return Response({"token": Token.objects.create(user=user).key})


class AccountApi(APIView):
    """The project's data, for users past the second factor only."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsOtpVerified]

    def get(self, request):
        return Response({"username": request.user.get_username(), "email": request.user.email})


urlpatterns = [
    path("api/token/", obtain_auth_token, name="api-token"),
    path("api/token/fresh/", FreshTokenView.as_view(), name="api-token-fresh"),
    path("api/account/", AccountApi.as_view(), name="api-account"),
    path("accounts/code/", sign_in_with_code, name="sign-in-with-code"),
    *test_urls.urlpatterns,
]
