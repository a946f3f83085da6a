"""Fields named as people read them, in the pages' error messages.

Contract errors name a field by its key (`average_heartrate must be a number`): right for
the JSON API, whose clients send those keys, wrong on a page whose form says "Average
heart rate". Pages show each message with the keys it names replaced by these names.
"""

from __future__ import annotations

import re

from flask import Flask

from shims.errors import TurnoutError

# Only keys that read differently from their name: `name`, `distance`, `email`... stay.
FIELD_NAMES = {
    "start_date": "start time",
    "elapsed_time": "elapsed time",
    "average_heartrate": "average heart rate",
    "total_elevation_gain": "elevation gain",
    "first_name": "first name",
    "last_name": "last name",
    "max_hr": "maximum heart rate",
    "rest_hr": "resting heart rate",
    "vo2max": "VO2max",
    "runs_per_week": "runs per week",
    "strava_token": "Strava token",  # nosec B105 - a field's label, not a secret
}
# A quoted value is the runner's own input, echoed back: it is left as typed.
_QUOTED_OR_KEY = re.compile(r"""('[^']*'|"[^"]*")|\b(""" + "|".join(FIELD_NAMES) + r")\b")


def for_people(error: TurnoutError) -> str:
    """The message with field keys as names, when it is about its field (it starts with
    the key). Others keep their keys: "unknown field(s) in form: vo2max" names what was
    sent, which no form label shows."""
    message = error.message
    if error.field is None or not message.startswith(f"{error.field} "):
        return message
    return _QUOTED_OR_KEY.sub(lambda found: found[1] or FIELD_NAMES[found[2]], message)


def messages_for_people(error: TurnoutError | None) -> list[str]:
    """Every problem of the error, in people's words; none without an error (a page
    rendered without one gets None or Jinja's undefined, both false)."""
    return [for_people(problem) for problem in error.problems] if error else []


def message_for_field(error: TurnoutError | None, field: str) -> str | None:
    """What is wrong with one form field, in people's words, or None if nothing is."""
    problems = error.problems if error else []
    return next((for_people(problem) for problem in problems if problem.field == field), None)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(messages_for_people=messages_for_people,
                                 message_for_field=message_for_field)
