"""The last admin can be neither demoted nor deleted, on every side.

A module of its own: the HTTP side's database is shared per module, and this is the
only test here that makes admins, so "the last admin" is certain on every side.
"""

from __future__ import annotations

import pytest

from shims.errors import Conflict


def test_the_last_admin_stays_an_admin(side):
    admin = side.user(admin=True)
    runner = side.user()
    for remove in (lambda: side.accounts.set_admin(admin.id, False),
                   lambda: side.accounts.delete_user(admin.id)):
        with pytest.raises(Conflict):
            remove()
    assert side.accounts.get_user(admin.id) == admin
    assert side.accounts.set_admin(admin.id, True) == admin  # keeping it admin is fine

    side.accounts.set_admin(runner.id, True)
    assert side.accounts.set_admin(admin.id, False).is_admin is False
    # Now the former runner is the last admin.
    with pytest.raises(Conflict):
        side.accounts.delete_user(runner.id)
    side.accounts.delete_user(admin.id)  # a non-admin goes freely
    with pytest.raises(Conflict):
        side.accounts.set_admin(runner.id, False)
    assert side.accounts.get_user(runner.id).is_admin is True
