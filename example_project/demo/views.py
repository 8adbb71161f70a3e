from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def home(request):
    """A page only a fully signed-in user (password and code) can see."""
    return render(request, "demo/home.html")


def spa(request):
    """The single-page demo: markup and a script; every datum it shows comes from the API."""
    return render(request, "demo/spa.html")
