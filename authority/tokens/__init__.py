"""Token formats: the JWT access token profile (RFC 9068), the keyring and JWKS, inbound JWTs."""
