"""What can go wrong with the flag store, said so that an operator can act on it.

Every failure of the store (a SQLite file that is damaged, missing or locked, a database
that cannot be reached, a file restored from an older copy) becomes one FlagStoreError:
a `reason` that metrics count and code can branch on, and a message that names the store
and says what to do. The CLI prints that message as its one line, the admin API answers
with it, and the workers log it.
"""

from __future__ import annotations

import getpass

from shims.errors import TurnoutError

# Reasons. The first five mean "this file is no flag store any more": `turnout flags kill`
# and `turnout flags repair` may set such a file aside and start a new one.
MISSING = "missing"  # the file is gone (deleted, or moved away)
TRUNCATED = "truncated"  # empty, or shorter than SQLite says it is
NOT_A_DATABASE = "not_a_database"  # garbage where SQLite's header should be
INTEGRITY = "integrity"  # SQLite's own check found damaged pages
NO_SCHEMA = "no_schema"  # a database, but without the flag tables
DAMAGED = frozenset({MISSING, TRUNCATED, NOT_A_DATABASE, INTEGRITY, NO_SCHEMA})

NO_DIRECTORY = "no_directory"  # the CLI was pointed at a directory that does not exist
LOCKED = "locked"  # another process held the lock longer than the busy timeout
PERMISSION = "permission"  # the file or its directory cannot be opened or written
UNREACHABLE = "unreachable"  # a database server that did not answer
BACKWARDS = "version_backwards"  # workers: the store is older than what they serve
RESTORED = "restored"  # writers: the file is older than the newest change written to it
ERROR = "error"  # anything else the database said

RECOVER = ("Workers keep serving their last good flags. Restore a backup "
           "(`turnout flags restore BACKUP`), or run `turnout flags kill` (or `turnout flags "
           "repair`) to set the file aside and start a new store with the kill switch on.")


class FlagStoreError(TurnoutError):
    """The flag store could not be used; `reason` says why, the message what to do."""

    status = 503
    code = "flag_store_unavailable"

    def __init__(self, message: str, *, reason: str, detail: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.detail = detail or message  # what is wrong, without the advice


class FlagStoreRestored(FlagStoreError):
    """A change refused because the store's file is an older copy than the newest change
    written to it: writing would quietly make every flag of that copy current again."""

    status = 409
    code = "flag_store_restored"


def damaged(where: str, reason: str, what: str) -> FlagStoreError:
    stop = "" if what.endswith(("?", ".")) else "."
    return FlagStoreError(f"the flag store {where} {what}{stop} {RECOVER}", reason=reason,
                          detail=what)


def from_database_error(error: BaseException, where: str) -> FlagStoreError:
    """A driver's error (SQLAlchemy's wrapper or sqlite3's own) in an operator's words."""
    said = (str(getattr(error, "orig", None) or error).splitlines() or ["?"])[0]
    text = said.lower()
    if "locked" in text or "busy" in text:
        return FlagStoreError(
            f"the flag store {where} is locked: another process has held it longer than "
            f"this command waits ({said}). A `sqlite3` shell or a stuck `turnout`? "
            f"`fuser {where}` names it; end it and run the command again.", reason=LOCKED)
    if "not a database" in text:
        return damaged(where, NOT_A_DATABASE,
                       f"is not a SQLite database ({said}): garbage copied over it?")
    if "malformed" in text or "corrupt" in text:
        return damaged(where, INTEGRITY, f"is damaged ({said})")
    if "no such table" in text:
        return damaged(where, NO_SCHEMA, f"has no flag tables ({said}): emptied or "
                                         "truncated, or not a flag store?")
    if "unable to open" in text or "readonly" in text or "permission" in text:
        return FlagStoreError(
            f"the flag store {where} cannot be opened for writing ({said}): check that its "
            f"directory exists and that {getpass.getuser()} may read and write it and the "
            "files beside it.", reason=PERMISSION)
    if "connect" in text or "timeout" in text or "refused" in text:
        return FlagStoreError(f"the flag store {where} did not answer ({said}): check that the "
                              "database is up and reachable from here.", reason=UNREACHABLE)
    return FlagStoreError(f"the flag store {where} could not be used: {said}", reason=ERROR)
