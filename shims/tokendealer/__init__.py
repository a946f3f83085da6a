"""The token dealer: OAuth2 client-credentials tokens for service-to-service calls.

Each process (the monolith, every extracted service) is a client with an id and a
secret from its configuration; the dealer hands it short-lived RS256 JWTs naming the
audience (the service called) and the scopes granted (`<contract>:read|write`).
Services verify them with shims.auth.TokenVerifier against the dealer's JWKS.
"""
