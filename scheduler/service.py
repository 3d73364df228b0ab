"""The `doppel scheduler` role: hold the lease, and while holding it run APScheduler.

Every replica runs this loop; only the lease holder has an APScheduler running (a
standby has none at all). On taking the lease the holder loads the persistent job
store, brings it in line with `schedules:` in doppel.yaml (an unchanged job keeps
its next run time, so its missed fires are still there to coalesce) and with the
TTL rows functions wrote, then lets APScheduler fire. Each tick (1 s) it also picks
up new TTLs, publishes what waits in the outbox, emits env.expired for any
environment past its TTL that no date job covered (the safety net), and env.expiring
once for each environment within `environments.warn_before` of its end.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.control import Scheduler
from scheduler.firing import FUNC_REF, SOURCE, EmitExecutor, Emitter, Firer
from scheduler.jobs import CONFIG, EXPIRY_PREFIX, JobSpec, expiry_job_id
from scheduler.lease import Lease, LeaseTiming
from scheduler.store import FencedJobStore

log = logging.getLogger(__name__)
KEEP_HISTORY_SECONDS = 30 * 86400  # fired expiries and lifted pauses: kept a month for `doppel schedule list`
PRUNE_EVERY_SECONDS = 3600


class SchedulerService:
    def __init__(self, *, engine, broker, registry, schedules: list[dict], warn_before: float = 0.0,
                 holder: str | None = None,
                 timing: LeaseTiming = LeaseTiming(), tick: float = 1.0,  # noqa: B008 - frozen: one shared default is safe
                 source: str = SOURCE, clock=time.time, monotonic=time.monotonic, metrics=None):
        """`clock` and `monotonic` are the lease's (tests hand in clocks they move); `metrics` counts fires."""
        self.engine, self.broker, self.tick = engine, broker, tick
        self.control = Scheduler(engine, schedules)
        self.lease = Lease(engine, holder, timing, clock=clock, monotonic=monotonic)
        self.emitter = Emitter(broker, engine, metrics=metrics)
        self.firer = Firer(control=self.control, registry=registry, emitter=self.emitter, may_fire=self.lease.valid,
                           source=source)
        self.warn_before = warn_before
        self._aps: BackgroundScheduler | None = None
        self._store: FencedJobStore | None = None
        self._wake = threading.Event()
        self._pruned_at = 0.0

    @classmethod
    def from_app(cls, app, **kwargs) -> "SchedulerService":
        return cls(engine=app.engine, broker=app.broker, registry=app.registry,
                   schedules=app.config["schedules"], warn_before=app.config["environments"]["warn_before"],
                   metrics=app.metrics, **kwargs)

    @property
    def active(self) -> bool:
        return self._aps is not None

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Until `stop`: keep the lease in its own thread, and follow it here."""
        self.broker.declare([])  # the exchange: fires must not wait for a worker to have declared it
        lease_stop = threading.Event()
        keeper = threading.Thread(target=self.lease.keep, args=(lease_stop, lambda held: self._wake.set()),
                                  name="doppel-scheduler-lease", daemon=True)
        keeper.start()
        log.info("scheduler %s started; %d configured job(s)", self.lease.holder, len(self.control.config_jobs()))
        try:
            while not stop.is_set():
                self._follow_lease()
                self._wake.wait(self.tick)
                self._wake.clear()
        finally:
            self._become_standby()
            self._guarded("outbox", self.emitter.flush)
            lease_stop.set()
            keeper.join(timeout=10)
            self.lease.release()
            log.info("scheduler %s stopped", self.lease.holder)

    def stop_soon(self) -> None:
        self._wake.set()

    def _follow_lease(self) -> None:
        if not self.lease.valid():
            if self._aps is not None:
                log.warning("scheduler %s: lease no longer valid; standing by", self.lease.holder)
                self._become_standby()
            return
        if self._aps is None:
            self._become_active()
        elif not self._aps_alive():
            log.error("scheduler %s: APScheduler's thread died; restarting it", self.lease.holder)
            self._become_standby()
            self._become_active()
        # The safety net first: it sends every due env.expired in one batch, where the date jobs send one each
        # (a thousand TTLs ending together take APScheduler's thread 20-30 s on PostgreSQL, and the job store's
        # lock for as long, which `_sync_expiries` then waits for); the date jobs then find theirs sent.
        self._guarded("expiry safety net", self.firer.sweep_expired)
        self._guarded("expiries", self._sync_expiries)
        self._guarded("outbox", self.emitter.flush)
        self._guarded("expiry warnings", lambda: self.firer.sweep_expiring(self.warn_before))
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            self._guarded("pruning", lambda: self.control.prune(time.time() - KEEP_HISTORY_SECONDS))

    # -- active / standby -----------------------------------------------------------------
    def _become_active(self) -> None:
        acquisition = self.lease.acquisition
        now = datetime.now(timezone.utc).timestamp()
        owed_since = acquisition.owed_since(self.lease.timing) if acquisition else now
        self.firer.owed_since = datetime.fromtimestamp(owed_since, timezone.utc)
        self._store = FencedJobStore(self.engine, self.lease.valid)
        aps = BackgroundScheduler(timezone=timezone.utc, jobstores={"default": self._store},
                                  executors={"default": EmitExecutor(self.firer, self._store)},
                                  job_defaults={"coalesce": False, "max_instances": 1, "misfire_grace_time": None})
        aps.start(paused=True)  # load and align the jobs before anything fires
        self._aps = aps
        try:
            self._sync_config()
            self._sync_expiries()
        except Exception:
            log.exception("scheduler %s: could not load the jobs; standing by and trying again", self.lease.holder)
            self._become_standby()
            return
        aps.resume()
        previous = acquisition.previous.holder if acquisition and acquisition.previous else "none"
        log.info("scheduler %s is active (took over from %s); missed fires since %s are owed", self.lease.holder,
                 previous, self.firer.owed_since.isoformat())

    def _become_standby(self) -> None:
        aps, self._aps = self._aps, None
        if aps is not None:
            try:
                aps.shutdown(wait=True)  # lets a fire in progress finish its publish
            except Exception:  # noqa: BLE001 - already stopped
                log.debug("APScheduler shutdown", exc_info=True)

    def _aps_alive(self) -> bool:
        thread = getattr(self._aps, "_thread", None)  # APScheduler 3 keeps no public health flag
        return thread is None or thread.is_alive()

    # -- bringing the job store in line ---------------------------------------------------
    def _sync_config(self) -> None:
        """Add changed or new configured jobs, remove ones no longer configured; leave the rest alone."""
        wanted = {spec.id: spec for spec in self.control.config_jobs()}
        existing = {job.id: job for job in self._aps.get_jobs()}
        for job_id, spec in wanted.items():
            self._put(spec, existing.get(job_id))
        for job_id, job in existing.items():
            if job.kwargs.get("spec", {}).get("kind") == CONFIG and job_id not in wanted:
                log.info("scheduler: job %s is no longer configured; removing it", job_id)
                self._aps.remove_job(job_id)

    def _sync_expiries(self) -> None:
        """Date jobs for the TTL rows functions wrote; gone for those cancelled or fired."""
        if self._aps is None:
            return
        # The job store first, the TTL rows after: a date job that fires in between is marked fired before
        # APScheduler removes it, so it is either still in `existing` or no longer `wanted`. Read the other way
        # round, a job that fired in between looked missing and was added again, and fired a second time (a
        # thousand TTLs ending together: about 1,000 second fires, and a tick busy re-adding them for 46 s).
        existing = {job.id: job for job in self._aps.get_jobs() if job.id.startswith(EXPIRY_PREFIX)}
        wanted = {expiry_job_id(e.env): JobSpec.expiry(e.env, e.at) for e in self.control.expiries()}
        for job_id, spec in wanted.items():
            self._put(spec, existing.get(job_id))
        for job_id in existing.keys() - wanted.keys():
            self._aps.remove_job(job_id)

    def _put(self, spec: JobSpec, existing) -> None:
        fingerprint = spec.fingerprint()
        if existing is not None and existing.kwargs.get("fingerprint") == fingerprint:
            return  # unchanged: keep its next run time
        self._aps.add_job(FUNC_REF, trigger=spec.trigger(), id=spec.id, name=f"{spec.type} {spec.describe()}",
                          kwargs={"spec": spec.to_dict(), "fingerprint": fingerprint}, replace_existing=True)
        log.info("scheduler: job %s %s (%s)", spec.id, "changed" if existing else "added", spec.describe())

    def _guarded(self, what: str, step) -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            log.exception("scheduler: %s failed this tick; trying again next tick", what)
