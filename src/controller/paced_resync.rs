//! Routine resyncs for a kind with thousands of objects, paced by the controller's free
//! reconcile slots.
//!
//! With the resync as a per-object `Action::requeue`, kube's scheduler holds every due
//! request once its slots are full, in a set it takes from in no particular order. A fleet
//! whose resyncs fall due faster than its reconciles finish keeps every slot busy with
//! routine checks, and a new or changed object can wait behind them indefinitely (5,000
//! Tenants with 1,000 databases at a 60 s resync left hundreds never reconciled).
//!
//! Here the resync is no requeue. Each pass, when it ends, sets the object's next due time;
//! a sweeper triggers the objects that are due, most overdue first, and only as many as
//! there are slots free. Under overload the resync stretches, and work that events bring
//! (a new object, a spec change, a Job's end) never waits behind more than a slot's worth of
//! routine checks.
//!
//! The slots are here too, not kube's: kube holds what it cannot run yet in a hash set and
//! takes the first it finds there, so under sustained load an unlucky object waits for good
//! (5,000 Tenants with real databases: a Tenant whose Job ended in the first second was not
//! reconciled again in 45 minutes, while thousands of later ones were). The controller runs
//! kube unbounded, and each pass first waits here for a slot, first come first served,
//! with one exception: objects not reconciled yet (by this process: after a restart or a
//! failover, all of them) queue one at a time, so a follow-up (a Job's end, a spec change of
//! an object already seen) waits behind at most one of them. A burst of 5,000 new Tenants
//! would otherwise hold every Job's end until the last of them had had its first pass, and
//! no Tenant would be Ready for half an hour. The price: while follow-ups keep every slot
//! busy (a rollout's Job ends, a DatabaseServer's readiness reaching every Tenant not
//! Ready), new objects start one per round of them; none waits for good, as each object
//! has at most one pass queued.
//! kube counts a waiting pass as running: a trigger for the object meanwhile brings one
//! more pass after it (where kube's own queue would have merged the two), and a waiting
//! pass reads the object afresh once it has its slot.

mod pick;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use self::pick::{Waiting, pick};
use super::backoff::jittered;

/// The shortest resync: a zero one would trigger every object without pause.
const LEAST_RESYNC: Duration = Duration::from_secs(1);

/// When nothing is due, the sweeper still looks this often (a pass may have ended without
/// waking it, or the clock may have jumped).
const IDLE_LOOK: Duration = Duration::from_secs(5);

pub struct PacedResync<K: Resource<DynamicType = ()>> {
    resync: Duration,
    /// The controller's concurrency; 0 means unbounded, as in kube.
    slots: usize,
    /// The slots, handed out in the order passes ask (tokio's semaphore is fair); none when
    /// unbounded.
    gate: Option<Arc<Semaphore>>,
    /// One ticket: the pass of an object not seen yet holds it while it queues at `gate`.
    first_passes: Arc<Semaphore>,
    closed: AtomicBool,
    /// Hears how many passes wait for a slot, whenever that changes.
    waiting: Option<Box<dyn Fn(usize) + Send + Sync>>,
    state: Mutex<State<K>>,
    pass_ended: Notify,
}

struct State<K: Resource<DynamicType = ()>> {
    /// Each object's next routine pass, set when its last pass ended.
    due: HashMap<ObjectRef<K>, Instant>,
    /// Passes running now, whatever started them.
    in_flight: usize,
    /// Passes waiting for a slot.
    queued: usize,
    /// Objects the sweeper triggered whose pass has not started yet, and since when.
    requested: HashMap<ObjectRef<K>, Instant>,
    /// Objects that have had a pass here (until they are gone).
    seen: HashSet<ObjectRef<K>>,
}

/// Held for the length of one reconcile: while it lives the slot counts as busy, and its
/// drop (however the reconcile ends, timeouts and cancellation included) sets the next due
/// time.
pub struct Pass<'a, K: Resource<DynamicType = ()>> {
    pacer: &'a PacedResync<K>,
    object: ObjectRef<K>,
    uid: String,
    next: Next,
    /// Released after the drop has set the next due time.
    _slot: Option<OwnedSemaphorePermit>,
}

/// A pass waiting for its slot; dropped before it gets one (kube cancelled it at shutdown),
/// it leaves the object due, so nothing is skipped.
struct Queued<'a, K: Resource<DynamicType = ()>> {
    pacer: &'a PacedResync<K>,
    object: Option<ObjectRef<K>>,
}

impl<K: Resource<DynamicType = ()>> Drop for Queued<'_, K> {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        {
            let mut state = self.pacer.lock();
            state.queued = state.queued.saturating_sub(1);
            state.due.insert(object, Instant::now());
            self.pacer.report_waiting(state.queued);
        }
        self.pacer.pass_ended.notify_one();
    }
}

/// What follows a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// The routine check, a resync after it ended.
    Resync,
    /// Nothing from the sweeper: the pass failed and kube's backoff retries it (a resync
    /// meanwhile would cut a backoff longer than it short).
    Backoff,
    /// Nothing: the object is gone (its finalizer removed, or not found).
    Gone,
}

impl<K: Resource<DynamicType = ()>> Pass<'_, K> {
    /// The pass failed: its retry is the error policy's.
    pub fn failed(&mut self) {
        self.next = Next::Backoff;
    }

    /// The object is gone: no more checks of it.
    pub fn gone(&mut self) {
        self.next = Next::Gone;
    }
}

impl<K: Resource<DynamicType = ()>> PacedResync<K> {
    pub fn new(resync: Duration, concurrency: u16) -> Self {
        PacedResync {
            resync: resync.max(LEAST_RESYNC),
            slots: match concurrency {
                0 => usize::MAX,
                n => usize::from(n),
            },
            gate: (concurrency > 0).then(|| Arc::new(Semaphore::new(usize::from(concurrency)))),
            first_passes: Arc::new(Semaphore::new(1)),
            closed: AtomicBool::new(false),
            waiting: None,
            state: Mutex::new(State {
                due: HashMap::new(),
                in_flight: 0,
                queued: 0,
                requested: HashMap::new(),
                seen: HashSet::new(),
            }),
            pass_ended: Notify::new(),
        }
    }

    /// Waits for a slot for a reconcile of `obj`, whichever trigger brought it, behind the
    /// passes that asked before (an object's first pass also waits for the one ticket, and
    /// the follow-ups that ask meanwhile go ahead of it); the pass holds the slot until it is
    /// dropped. None once [`Self::close`]d: the controller is stopping, and what waits does
    /// not run.
    pub async fn start(&self, obj: &K) -> Option<Pass<'_, K>> {
        let object = ObjectRef::from_obj(obj);
        let first = {
            let mut state = self.lock();
            state.requested.remove(&object);
            // Not due while it waits or runs: a sweep meanwhile would trigger it again, and
            // kube would run a second pass right after this one.
            state.due.remove(&object);
            state.queued += 1;
            self.report_waiting(state.queued);
            !state.seen.contains(&object)
        };
        let mut queued = Queued {
            pacer: self,
            object: Some(object),
        };
        let slot = match &self.gate {
            Some(gate) => {
                let _ticket = match first {
                    true => Some(self.first_passes.clone().acquire_owned().await.ok()?),
                    false => None,
                };
                Some(gate.clone().acquire_owned().await.ok()?)
            }
            None if self.closed.load(Ordering::SeqCst) => return None,
            None => None,
        };
        let object = queued.object.take().expect("still queued");
        {
            let mut state = self.lock();
            state.queued = state.queued.saturating_sub(1);
            state.in_flight += 1;
            self.report_waiting(state.queued);
        }
        Some(Pass {
            pacer: self,
            object,
            uid: obj.meta().uid.clone().unwrap_or_default(),
            next: Next::Resync,
            _slot: slot,
        })
    }

    /// Reports the number of passes waiting for a slot to `report`, now and on each change.
    pub fn reporting_waiting(mut self, report: impl Fn(usize) + Send + Sync + 'static) -> Self {
        report(self.lock().queued);
        self.waiting = Some(Box::new(report));
        self
    }

    /// Called with the state locked, so the reports come in the order of the changes.
    fn report_waiting(&self, queued: usize) {
        if let Some(report) = &self.waiting {
            report(queued);
        }
    }

    /// The controller is stopping: passes waiting for a slot give up (kube's graceful
    /// shutdown waits for every reconcile it started, and thousands may be waiting).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.close();
        }
        self.first_passes.close();
    }

    /// The object is gone (its trigger found nothing to reconcile): no more resyncs of it.
    pub fn forget(&self, object: &ObjectRef<K>) {
        {
            let mut state = self.lock();
            state.due.remove(object);
            state.requested.remove(object);
            state.seen.remove(object);
        }
        // Its request may have held the last slot.
        self.pass_ended.notify_one();
    }

    /// Whether `object` was triggered by a sweep and has not started since.
    fn still_requested(&self, object: &ObjectRef<K>) -> bool {
        self.lock().requested.contains_key(object)
    }

    /// The objects to trigger now, when to look again if no pass ends before, and how many
    /// are due.
    fn sweep(&self, now: Instant) -> Sweep<K> {
        let mut state = self.lock();
        // A request whose pass never started (its object deleted before kube took it, and
        // no `forget` yet) stops holding a slot after a resync.
        let resync = self.resync;
        state
            .requested
            .retain(|_, since| now.saturating_duration_since(*since) < resync);
        let busy = state
            .in_flight
            .saturating_add(state.queued)
            .saturating_add(state.requested.len());
        let free = self.slots.saturating_sub(busy);
        let candidates = state
            .due
            .iter()
            .filter(|(object, _)| !state.requested.contains_key(*object))
            .map(|(object, at)| (object, *at));
        let (picked, waiting, overdue) = pick(candidates, now, free);
        let picked: Vec<ObjectRef<K>> = picked.into_iter().cloned().collect();
        // Due and left without a slot (the picked have one now).
        let overdue = overdue - picked.len();
        for object in &picked {
            state.requested.insert(object.clone(), now);
        }
        let look_again = match waiting {
            // Due but no slot: a pass ending frees one; look again soon in any case.
            Waiting::Backlog => now + Duration::from_secs(1),
            Waiting::Next(at) => at.min(now + IDLE_LOOK),
            Waiting::Nothing => now + IDLE_LOOK,
        };
        Sweep {
            picked,
            look_again,
            overdue,
        }
    }

    /// The triggers for `Controller::reconcile_on`, until `shutdown`; `overdue` hears how
    /// many due objects were left without a slot after each sweep, and 0 at the end (a
    /// replica that stopped leading checks nothing).
    pub fn triggers(
        self: Arc<Self>,
        shutdown: Shared<BoxFuture<'static, ()>>,
        overdue: impl Fn(usize) + Send + Sync + 'static,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: Send + 'static,
    {
        futures::stream::unfold(
            (self, Vec::<ObjectRef<K>>::new(), shutdown, overdue),
            |(pacer, mut ready, shutdown, overdue)| async move {
                loop {
                    if let Some(object) = ready.pop() {
                        // Started meanwhile by another trigger: handing it over too would
                        // make kube run it again right after.
                        if !pacer.still_requested(&object) {
                            continue;
                        }
                        return Some((object, (pacer, ready, shutdown, overdue)));
                    }
                    let sweep = pacer.sweep(Instant::now());
                    overdue(sweep.overdue);
                    if !sweep.picked.is_empty() {
                        // Popped from the end: most overdue first.
                        ready = sweep.picked.into_iter().rev().collect();
                        continue;
                    }
                    tokio::select! {
                        _ = pacer.pass_ended.notified() => {}
                        _ = tokio::time::sleep_until(sweep.look_again) => {}
                        _ = shutdown.clone() => {
                            overdue(0);
                            return None;
                        }
                    }
                }
            },
        )
        .boxed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Resource<DynamicType = ()>> Drop for Pass<'_, K> {
    fn drop(&mut self) {
        {
            let mut state = self.pacer.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            if self.next == Next::Resync {
                let at = Instant::now() + jittered(self.pacer.resync, &self.uid);
                state.due.insert(self.object.clone(), at);
            }
            if self.next == Next::Gone {
                state.seen.remove(&self.object);
            } else {
                state.seen.insert(self.object.clone());
            }
        }
        self.pacer.pass_ended.notify_one();
    }
}

struct Sweep<K: Resource<DynamicType = ()>> {
    picked: Vec<ObjectRef<K>>,
    look_again: Instant,
    overdue: usize,
}

#[cfg(test)]
mod tests;
