"""Strava import feature: pull linked runners' activities from a Strava-compatible API."""
