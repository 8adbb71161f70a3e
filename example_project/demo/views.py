from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def home(request):
    """A page only a fully signed-in user (password and code) can see."""
    return render(request, "demo/home.html")
