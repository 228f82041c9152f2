"""The ASGI entry point uvicorn imports in each worker: settings come from the environment."""

from __future__ import annotations

from authority import logs
from authority.app import create_app
from authority.settings import load_settings

settings = load_settings()
# Here, not in create_app: the process that serves owns its logging; tests and embedding
# programs that build apps keep theirs.
logs.configure(settings.log_level, settings.log_format)
app = create_app(settings)
