"""The ASGI entry point uvicorn imports in each worker: settings come from the environment."""

from __future__ import annotations

from authority.app import create_app
from authority.settings import load_settings

app = create_app(load_settings())
