"""Revocation events and the feed that carries them to resource servers (Server-Sent Events)."""
