"""The reports service: a runner's monthly statistics, extracted from the monolith.

It owns no data. Each report is computed from runs read through the Runs contract, over
HTTP to wherever `TURNOUT_REPORTS_DATA_URL` points (by default the monolith's routed `/rpc`,
so the runs flag still decides which database is read).
"""
