"""`turnout data copy|verify FEATURE`: move a feature's rows between the monolith's database
and its service's, and prove both hold the same rows.

Both commands talk to the two databases directly, so they work whether or not
the processes are running. `copy` is idempotent: it upserts every user and
every runner's runs by id (ids are the same on both sides) and removes users
the source no longer has, so running it again after dual writes began only
repairs what differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from extracted.dataservice.app import load_config as load_service_config
from monolith.config import load_config
from monolith.models import Base, Run, User
from monolith.runs.sync import TABLES, LocalRunsSync
from shims.errors import Conflict
from shims.sql import create_tables, make_engine
from shims.sync import TableDigest

FEATURES_WITH_DATA = ("runs",)
BATCH = 200  # keys per transaction: bounded memory, and a failure loses one batch at most


@dataclass(frozen=True)
class TableDifference:
    table: str
    monolith_count: int
    service_count: int
    only_in_monolith: list[str]
    only_in_service: list[str]
    differing: list[str]

    @property
    def clean(self) -> bool:
        return not (self.only_in_monolith or self.only_in_service or self.differing) \
            and self.monolith_count == self.service_count


def both_sides() -> tuple[LocalRunsSync, LocalRunsSync]:
    monolith = make_engine(load_config()["DATABASE_URL"], pool_size=2)
    service = make_engine(load_service_config()["DATASERVICE_DATABASE_URL"], pool_size=2)
    for engine in (monolith, service):
        create_tables(Base.metadata, engine, [User.__table__, Run.__table__])
    return LocalRunsSync(monolith), LocalRunsSync(service)


def copy(source: LocalRunsSync, target: LocalRunsSync) -> int:
    source_keys = source.all_keys()
    # Users only the target still holds are gone from the source: an empty set removes
    # them (their runs go by cascade). First, so a runner who re-registered with the same
    # email is not refused by the old row. Then users, then their runs: foreign keys hold
    # at every step.
    kept = {key.id for key in source_keys if key.entity == "user"}
    stale = [key for key in target.all_keys() if key.entity == "user" and key.id not in kept]
    if stale and not kept:
        raise Conflict(f"the source holds no users and the target holds {len(stale)}: copying "
                       "would delete them all, so nothing was copied (is the direction right?)")
    keys = stale + source_keys
    written = 0
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        written += target.apply(source.export(batch))
    return written


def verify(monolith: LocalRunsSync, service: LocalRunsSync) -> list[TableDifference]:
    return [_compare(monolith.digest(table), service.digest(table)) for table in TABLES]


def _compare(left: TableDigest, right: TableDigest) -> TableDifference:
    shared = left.checksums.keys() & right.checksums.keys()
    return TableDifference(
        table=left.table, monolith_count=left.count, service_count=right.count,
        only_in_monolith=sorted(left.checksums.keys() - right.checksums.keys()),
        only_in_service=sorted(right.checksums.keys() - left.checksums.keys()),
        differing=sorted(key for key in shared if left.checksums[key] != right.checksums[key]))


def report(differences: list[TableDifference], shown: int = 10) -> list[str]:
    lines = []
    for d in differences:
        state = "same" if d.clean else "DIFFERENT"
        lines.append(f"{d.table:<6} monolith {d.monolith_count:>7}  service {d.service_count:>7}"
                     f"  {state}")
        for label, ids in (("only in monolith", d.only_in_monolith),
                           ("only in service", d.only_in_service), ("differ", d.differing)):
            if ids:
                more = f" (+{len(ids) - shown} more)" if len(ids) > shown else ""
                lines.append(f"       {label}: {', '.join(ids[:shown])}{more}")
    return lines
