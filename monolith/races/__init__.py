"""Races feature: shared races, joining them, and training plans towards them."""
