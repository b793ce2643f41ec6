"""The ceiling for bench/search.py: a bare FastAPI endpoint returning a stored 20-item page.

It answers `GET /store/v1/offers` (any query string, any Authorization header, both ignored) with
a real page the marketplane API returned, serialised per request with orjson as marketplane's
`Json` response does. No database, no authentication, no middleware: what FastAPI + uvicorn can
do on this machine with the same server options as `marketplane serve` (uvloop, httptools, one
worker, no access log).

    .venv/bin/python bench/ceiling.py --page bench/.cache/page-20.json --port 8100
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from starlette.responses import Response


def create_app(page: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/store/v1/offers")
    async def offers() -> Response:
        return Response(orjson.dumps(page), media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--page", type=Path, required=True, help="JSON of a 20-item page")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    page = orjson.loads(args.page.read_bytes())
    uvicorn.run(
        create_app(page),
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
