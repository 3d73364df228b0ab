"""APScheduler's SQLAlchemy job store, fenced by the lease.

A replica that has lost (or is about to lose) the lease reads no due jobs and writes
nothing, so a stalled former holder waking up cannot move a job's next run time past
a time its successor has not fired yet. Database errors on writes are logged instead
of raised: raised inside APScheduler's loop they would end its thread silently; left
unwritten, the job simply stays due and fires again with the same event id.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.jobstores.base import BaseJobStore, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.exc import SQLAlchemyError

from scheduler.tables import JOBS_TABLE

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(seconds=2)


class FencedJobStore(SQLAlchemyJobStore):
    def __init__(self, engine, may_write: Callable[[], bool]):
        super().__init__(engine=engine, tablename=JOBS_TABLE)
        self._may_write = may_write
        self._keep_due: set[str] = set()

    def start(self, scheduler, alias):
        # APScheduler's own start would make the table when missing; the migrations made it (revision 0004), and
        # the process checked its database is at their head before it got here.
        BaseJobStore.start(self, scheduler, alias)

    def keep_due(self, job_id: str) -> None:
        """Skip the next update of this job: its fire failed, so its time must stay due."""
        self._keep_due.add(job_id)

    def get_due_jobs(self, now):
        if not self._may_write():
            return []
        return super().get_due_jobs(now)

    def get_next_run_time(self):
        try:
            return super().get_next_run_time()
        except SQLAlchemyError as exc:
            log.warning("scheduler: job store unreadable (%s); looking again shortly", type(exc).__name__)
            return datetime.now(timezone.utc) + RETRY_AFTER

    def add_job(self, job):
        if self._fenced("add", job.id):
            return
        super().add_job(job)

    def update_job(self, job):
        if job.id in self._keep_due:
            self._keep_due.discard(job.id)
            return
        if self._fenced("update", job.id):
            return
        try:
            super().update_job(job)
        except JobLookupError:
            log.info("scheduler: job %s was removed while it fired", job.id)
        except SQLAlchemyError as exc:
            log.warning("scheduler: could not record the next run of %s (%s); it fires again with the same id",
                        job.id, type(exc).__name__)

    def remove_job(self, job_id):
        if self._fenced("remove", job_id):
            return
        try:
            super().remove_job(job_id)
        except JobLookupError:
            pass  # already gone: removing is safe to repeat
        except SQLAlchemyError as exc:
            log.warning("scheduler: could not remove job %s (%s); it is removed on a later pass",
                        job_id, type(exc).__name__)

    def remove_all_jobs(self):
        if not self._fenced("remove all", "*"):
            super().remove_all_jobs()

    def shutdown(self):
        """Keep the engine: it is Doppel's, shared with the rest of the process."""

    def _fenced(self, what: str, job_id: str) -> bool:
        if self._may_write():
            return False
        log.warning("scheduler: not writing (%s %s) to the job store: this replica no longer holds the lease",
                    what, job_id)
        return True
