"""The Strava importer service: pulls each linked runner's recent Strava activities and keeps
the new runs, extracted from the monolith.

It owns no data. Linked runners come from the Accounts contract and new runs go out through
Runs.import_runs, over HTTP to wherever `TURNOUT_STRAVAIMPORT_DATA_URL` points (by default the
monolith's routed `/rpc`, so the runs flag still decides which database is written); it never
touches another service's database.
"""
