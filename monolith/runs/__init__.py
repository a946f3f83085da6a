"""Runs feature: a runner's own runs, per month."""
