"""The data service: Runnerly's users and runs, extracted from the monolith.

It starts as the monolith's own feature code (LocalAccounts, LocalRuns) on its
own database, served over the same contracts: a lift-and-shift, the usual first
step of an extraction. From here the team evolves the service; the contract
suite runs the same assertions against both sides and keeps them honest.
"""
