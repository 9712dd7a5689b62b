"""A minimal Django project in one module: an HTTP view and a WebSocket view.

Served by ``gevent.pywsgi`` with ``gws.wsgi.WebSocketHandler``
(tests/test_wsgi.py) and by gunicorn with ``gws.gunicorn.GeventWebSocketWorker``
(tests/test_gunicorn.py, as ``django_app:application``). Django's request
carries the WSGI environ as ``request.META``, so the view finds the
connection in ``request.META["wsgi.websocket"]``.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="gws-tests-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def index(request: Any) -> HttpResponse:
    return HttpResponse("hello from django", content_type="text/plain")


def echo(request: Any) -> HttpResponse:
    ws = request.META.get("wsgi.websocket")
    if ws is None:
        return HttpResponse("WebSocket expected here\n", status=400, content_type="text/plain")
    for message in ws:
        ws.send(message.payload)
    return HttpResponse()


urlpatterns = [path("", index), path("echo", echo)]

application = get_wsgi_application()
