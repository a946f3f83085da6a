"""Feature flags shared by every process: the model, the SQL store and the per-process cache."""
