"""API plumbing shared by every app: authentication, the lenient JSON parser, the error handler."""
import logging

import orjson
from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from django.http import Http404, QueryDict
from rest_framework import exceptions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from .errors import ApplicationError

logger = logging.getLogger(__name__)


class BearerOrTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` (DRF's) or `Authorization: Bearer <key>` (Prometheus, curl)."""

    def authenticate(self, request):
        parts = request.headers.get("authorization", "").split()
        if not parts or parts[0].lower() not in ("token", "bearer"):
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: use 'Token <key>' or 'Bearer <key>'.")
        return self.authenticate_credentials(parts[1])


class LenientJSONParser(BaseParser):
    """JSON whatever the content type says: the manual's `curl -d '{...}'` sends form encoding.

    A form-encoded body that is not JSON is read as a form.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        if not body or not body.strip():
            return {}
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if media_type and media_type.startswith("application/x-www-form-urlencoded"):
                return QueryDict(body, encoding="utf-8")
            raise exceptions.ParseError(f"Malformed JSON: {exc}") from exc


def exception_handler(exc, context):
    from rest_framework.views import exception_handler as drf_exception_handler  # avoids an import cycle

    if isinstance(exc, ApplicationError):
        return Response({"error": exc.message, **exc.extra}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        return Response({"error": "; ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": str(response.data["detail"])}
    elif response is not None and not (isinstance(response.data, dict) and "error" in response.data):
        response.data = {"error": "Invalid input.", "fields": response.data}
    return response
