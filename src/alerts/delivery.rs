//! Delivery: a bounded queue and a worker task per receiver, retries with exponential backoff
//! and jitter, every outcome logged and counted.
//!
//! **Never blocks the caller.** [`Dispatcher::enqueue`] takes a mutex held only for a
//! `VecDeque` push, then wakes the worker: no `await`, no network, no waiting for space. So the
//! evaluator, and the pipeline behind it, run at the same speed whether a receiver answers in
//! a millisecond, hangs for ten seconds or refuses connections.
//!
//! **Bounded, dropping the oldest.** Each queue holds at most `capacity` notifications. When
//! a receiver has been down long enough to fill it, the *oldest* entry is dropped and counted
//! (`my2pg_alert_deliveries_total{outcome="dropped"}`), because the newest notifications
//! describe the present: on-call needs "lag is 40 min and still firing" more than the
//! trigger from an hour ago. (A bounded `mpsc` channel can only refuse the newest, hence the
//! small queue of our own; it is bounded by construction.)
//!
//! **Order per receiver.** One worker per receiver sends one notification at a time, in
//! queue order, retrying it before moving on: a resolve never overtakes its trigger. Receivers
//! are independent: a dead Slack does not delay PagerDuty.
//!
//! **Retries.** Network errors, 408, 429 and 5xx are retried up to
//! [`RetryPolicy::max_attempts`] times with exponential backoff (`initial`, doubling, capped
//! at `max`) and "equal jitter" (half the delay fixed, half random) so several my2pg
//! instances paging at once do not retry in lockstep; a `Retry-After` from the receiver is
//! honoured up to `max`. Other 4xx answers are final. A notification that cannot be delivered
//! is logged at `warn` (never `error`, which is kept for data loss) and counted as `failed`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::AlertEvent;
use super::receivers::{Receiver, SendError};
use crate::metrics::{DeliveryOutcome, Metrics};

/// Default queue capacity per receiver. An alert episode makes two notifications plus one per
/// repeat interval; 128 covers days of an unreachable receiver with every rule flapping at
/// the hysteresis limits, and costs a few kilobytes.
pub const DEFAULT_QUEUE_CAPACITY: usize = 128;

/// How a notification is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Longest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over about two and a half minutes (1, 2, 4, … s, at most 60 s apart):
    /// long enough to ride out a receiver's restart or a rate limit, short enough that the
    /// queue moves on to newer notifications well before the next repeat.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A quick policy for `my2pg alert test`: three attempts within a few seconds, so the
    /// command answers promptly.
    pub fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(2),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based): exponential, capped, with
    /// equal jitter; at least `retry_after` (itself capped at `max_backoff`).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let half = exp / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let jittered = half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms));
        jittered.max(retry_after.unwrap_or_default().min(self.max_backoff))
    }
}

/// Sends `ev` to `receiver`, retrying per `policy`. Returns the number of attempts made and
/// the outcome (the last error when every attempt failed). Each retry is logged and counted.
pub async fn deliver(
    receiver: &Receiver,
    ev: &AlertEvent,
    policy: &RetryPolicy,
    metrics: Option<&Metrics>,
) -> (u32, Result<(), SendError>) {
    let mut attempt = 1;
    loop {
        match receiver.send(ev).await {
            Ok(()) => return (attempt, Ok(())),
            Err(e) if e.is_retryable() && attempt < policy.max_attempts => {
                let wait = policy.backoff(attempt, e.retry_after());
                tracing::info!(
                    receiver = receiver.name(), rule = %ev.rule, attempt,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %error_chain(&e), "alert delivery failed, retrying"
                );
                if let Some(m) = metrics {
                    m.alert_retry(receiver.name());
                }
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return (attempt, Err(e)),
        }
    }
}

/// `error: cause: cause` on one line.
pub use schemas::error_chain;

/// A bounded FIFO that drops its oldest entry when full.
#[derive(Debug)]
struct Queue {
    items: Mutex<VecDeque<AlertEvent>>,
    capacity: usize,
    wake: Notify,
    closed: AtomicBool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<AlertEvent>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pushes; returns the dropped oldest entry when the queue was full.
    fn push(&self, ev: AlertEvent) -> Option<AlertEvent> {
        let dropped = {
            let mut q = self.lock();
            let dropped = if q.len() >= self.capacity {
                q.pop_front()
            } else {
                None
            };
            q.push_back(ev);
            dropped
        };
        // `notify_one` stores a permit when the worker is not waiting yet, so a push between
        // the worker's empty check and its `notified().await` is not lost.
        self.wake.notify_one();
        dropped
    }

    /// The next entry; `None` once closed and empty.
    async fn pop(&self) -> Option<AlertEvent> {
        loop {
            if let Some(ev) = self.lock().pop_front() {
                return Some(ev);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            self.wake.notified().await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// Fans notifications out to every receiver's queue.
#[derive(Debug)]
pub struct Dispatcher {
    queues: Vec<(String, Arc<Queue>)>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    metrics: Metrics,
}

impl Dispatcher {
    /// Starts one worker per receiver. Must be called inside a tokio runtime.
    pub fn start(
        receivers: Vec<Receiver>,
        policy: RetryPolicy,
        capacity: usize,
        metrics: Metrics,
    ) -> Dispatcher {
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for receiver in receivers {
            metrics.register_receiver(receiver.name());
            let queue = Arc::new(Queue {
                items: Mutex::new(VecDeque::new()),
                capacity: capacity.max(1),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
            });
            queues.push((receiver.name().to_owned(), Arc::clone(&queue)));
            workers.push(tokio::spawn(worker(
                receiver,
                queue,
                policy.clone(),
                metrics.clone(),
            )));
        }
        Dispatcher {
            queues,
            workers: Mutex::new(workers),
            metrics,
        }
    }

    /// Queues `ev` for every receiver it is for. Returns at once, whatever the receivers do.
    pub fn enqueue(&self, ev: AlertEvent) {
        for (name, queue) in &self.queues {
            if !ev.is_for(name) {
                continue;
            }
            if let Some(old) = queue.push(ev.clone()) {
                self.metrics.alert_delivery(name, DeliveryOutcome::Dropped);
                tracing::warn!(
                    receiver = %name, rule = %old.rule, action = old.action.as_str(),
                    "alert queue full: dropped the oldest notification"
                );
            }
        }
    }

    /// Notifications waiting (not counting one being sent) for `receiver`.
    pub fn queued(&self, receiver: &str) -> usize {
        self.queues
            .iter()
            .find(|(n, _)| n == receiver)
            .map_or(0, |(_, q)| q.lock().len())
    }

    /// Lets the workers finish what is queued for at most `drain`, then stops them; what is
    /// left is logged and counted as failed.
    pub async fn shutdown(&self, drain: Duration) {
        for (_, q) in &self.queues {
            q.close();
        }
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let deadline = tokio::time::Instant::now() + drain;
        for w in workers {
            let abort = w.abort_handle();
            if tokio::time::timeout_at(deadline, w).await.is_err() {
                abort.abort();
            }
        }
        for (name, q) in &self.queues {
            let left = std::mem::take(&mut *q.lock());
            if !left.is_empty() {
                tracing::warn!(receiver = %name, notifications = left.len(), "alert notifications not delivered before shutdown");
                for _ in &left {
                    self.metrics.alert_delivery(name, DeliveryOutcome::Failed);
                }
            }
        }
    }
}

async fn worker(receiver: Receiver, queue: Arc<Queue>, policy: RetryPolicy, metrics: Metrics) {
    while let Some(ev) = queue.pop().await {
        let (attempts, outcome) = deliver(&receiver, &ev, &policy, Some(&metrics)).await;
        match outcome {
            Ok(()) => {
                metrics.alert_delivery(receiver.name(), DeliveryOutcome::Delivered);
                tracing::info!(
                    receiver = receiver.name(), rule = %ev.rule, action = ev.action.as_str(),
                    attempts, "alert delivered"
                );
            }
            Err(e) => {
                metrics.alert_delivery(receiver.name(), DeliveryOutcome::Failed);
                tracing::warn!(
                    receiver = receiver.name(), rule = %ev.rule, action = ev.action.as_str(),
                    attempts, error = %error_chain(&e), fix = e.hint().unwrap_or(""),
                    "alert not delivered"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = RetryPolicy::default();
        for attempt in 1..=10 {
            let exp = Duration::from_secs(1 << (attempt - 1)).min(p.max_backoff);
            let d = p.backoff(attempt, None);
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(p.backoff(1, Some(Duration::from_secs(3600))), p.max_backoff);
    }
}
