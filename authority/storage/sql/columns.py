"""Column sets that several flows' queries select, so that each reads them the same way."""

from __future__ import annotations

from authority.storage.schema import resource_servers

#: A resource server's registration, as ``grants.client_auth.server_from_row`` reads it.
SERVER_COLUMNS = (
    resource_servers.c.id.label("rs_id"),
    resource_servers.c.audience.label("rs_audience"),
    resource_servers.c.auth_method.label("rs_auth_method"),
    resource_servers.c.secret_hash.label("rs_secret_hash"),
    resource_servers.c.jwks.label("rs_jwks"),
    resource_servers.c.status.label("rs_status"),
)
