"""Evidence for moving a feature: what every worker of every monolith process saw of each
side, kept in small time buckets in the flag store's database and merged over a window
(docs/turnout.md, "Gates, guards and evidence")."""
