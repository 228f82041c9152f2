"""The ASGI entry point uvicorn imports in each worker: settings come from the environment.

uvicorn has installed its signal handlers by the time it imports this module: SIGTERM
now begins the instance's drain before it reaches them (``authority.shutdown``).
"""

from __future__ import annotations

from authority.app import create_app
from authority.settings import load_settings
from authority.shutdown import chain_signals

app = create_app(load_settings())
chain_signals(app.state.services.drain)
