"""The API's browsable documentation (Swagger UI) at /public/v1/accounts/docs, served from
this server alone.

Swagger UI's files come from a PyPI package (fastapi-offline ships the current
swagger-ui-dist build; only its files are used) and are served under the page's own path:
nothing is fetched from a CDN, the page works offline, and no third party's script runs on
the origin where the portal keeps a signed-in token. The page has no inline script (its
start-up is `init.js`), so its Content-Security-Policy allows scripts of this origin only.
"""

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from tokenhouse.kit.routing import LeanRoute

DOCS = "/public/v1/accounts/docs"
OPENAPI = "/public/v1/accounts/openapi.json"
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"

# Swagger UI sets styles through the DOM (allowed without 'unsafe-inline') and shows a few
# images as data: URIs; "Try it out" calls this origin's API.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tokenhouse API</title>
<link rel="icon" type="image/png" href="{DOCS}/favicon.png">
<link rel="stylesheet" href="{DOCS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS}/swagger-ui-bundle.js"></script>
<script src="{DOCS}/init.js"></script>
</body>
</html>
"""

# FastAPI's own settings for the page, without the validator badge (an image from
# validator.swagger.io) and without OAuth (the API takes Bearer tokens).
INIT = f"""window.ui = SwaggerUIBundle({{
  url: "{OPENAPI}",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}});
"""

FILES = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
         "swagger-ui.css": "text/css; charset=utf-8", "favicon.png": "image/png"}

router = APIRouter(include_in_schema=False, route_class=LeanRoute)


@router.get(DOCS)
async def page() -> Response:
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get(f"{DOCS}/init.js")
async def init() -> Response:
    return Response(INIT, media_type="text/javascript; charset=utf-8", headers=HEADERS)


def _asset(name: str, media_type: str) -> None:
    async def serve() -> FileResponse:
        return FileResponse(ASSETS / name, media_type=media_type, headers=HEADERS)

    router.add_api_route(f"{DOCS}/{name}", serve, methods=["GET"], name=f"docs {name}")


for _name, _media_type in FILES.items():
    _asset(_name, _media_type)
