"""Swagger UI at /docs and ReDoc at /redoc, from assets shipped in this package (no CDN, no fonts
from elsewhere), so the API documents itself on a machine without internet."""

from pathlib import Path
from typing import TypedDict

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/apidocs/static"


class Page(TypedDict):
    """What both pages show: the document and a title."""

    openapi_url: str
    title: str


PAGE = Page(openapi_url="/openapi.json", title="qruntime API")
FAVICON = f"{STATIC_PATH}/favicon-32x32.png"

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        **PAGE,
        swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
        swagger_favicon_url=FAVICON,
        swagger_ui_parameters={
            "persistAuthorization": True,
            "displayRequestDuration": True,
            # No badge fetched from validator.swagger.io: nothing leaves the machine.
            "validatorUrl": None,
        },
    )


@router.get("/redoc", response_class=HTMLResponse)
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        **PAGE,
        redoc_js_url=f"{STATIC_PATH}/redoc.standalone.js",
        redoc_favicon_url=FAVICON,
        with_google_fonts=False,
    )


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)
