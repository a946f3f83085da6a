"""Turnout's kit: contracts, routing, flags, transports and the errors they share."""
