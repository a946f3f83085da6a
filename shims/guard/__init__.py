"""The automatic rollback guard: one per flag store, it moves a feature back one stage when
its remote side has broken the guard's limits for a whole window (docs/turnout.md, "Gates,
guards and evidence")."""
