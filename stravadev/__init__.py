"""A small Strava-compatible API for development and tests (the real Strava is external)."""
