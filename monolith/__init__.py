"""Runnerly, the reference monolith Turnout migrates one feature at a time."""

from monolith.app import create_app

__all__ = ["create_app"]
