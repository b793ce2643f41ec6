"""JSON bodies rendered with orjson, and problem+json."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

JSON = "application/json"
PROBLEM = "application/problem+json"


class Json(JSONResponse):
    """JSON rendered by orjson. A JSONResponse, so FastAPI documents routes' response models."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:marketplane:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
        "errors": errors or [],
    }
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)
