"""Moving a feature one stage at a time, on evidence: the stage path, the gates a move must
pass, the moves themselves (docs/turnout.md, "Gates, guards and evidence")."""
