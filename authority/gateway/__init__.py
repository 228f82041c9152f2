"""The gateway: per-call enforcement in the data path for tools that cannot embed the
middleware (MCP servers over Streamable HTTP, plain HTTP APIs)."""
