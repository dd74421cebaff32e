//! What a publisher holds while its destination is unreachable, under Ceilometer's
//! policies: `default` retries (a bounded number of times), `queue` keeps up to a
//! bound and drops the oldest first, `drop` drops at once. Every drop is counted.

use super::{Batch, Delivery, PublishError, Publisher};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// What to do with messages that cannot be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Keep them and retry, up to `max_retry` failed attempts in a row; then drop.
    Default,
    /// Keep up to `max_queue_length` messages, dropping the oldest first.
    Queue,
    /// Drop them.
    Drop,
    /// Drop them at once, report it, and let the caller decide when to try again: the
    /// disk queue's publisher keeps them (`policy=disk`). Not a URL's choice.
    Handover,
}

impl std::str::FromStr for Policy {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "default" => Ok(Self::Default),
            "queue" => Ok(Self::Queue),
            "drop" => Ok(Self::Drop),
            _ => Err(()),
        }
    }
}

/// One message waiting to be sent, and how many samples it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending<T> {
    /// The message.
    pub message: T,
    /// Samples in it.
    pub samples: u64,
}

/// Messages waiting, under a policy. The oldest may be in flight: sent, their
/// receipt not yet in; they leave the queue only when it comes.
#[derive(Debug)]
pub struct LocalQueue<T> {
    policy: Policy,
    max_length: usize,
    max_retry: u32,
    failures: u32,
    messages: VecDeque<Pending<T>>,
    in_flight: usize,
}

impl<T> LocalQueue<T> {
    /// An empty queue. `max_length` bounds it under every policy (Ceilometer's
    /// `max_queue_length`); `max_retry` is the `default` policy's attempt limit.
    pub fn new(policy: Policy, max_length: usize, max_retry: u32) -> Self {
        Self { policy, max_length: max_length.max(1), max_retry, failures: 0, messages: VecDeque::new(), in_flight: 0 }
    }

    /// Adds messages; returns the samples dropped to stay within the bound (the
    /// oldest not in flight first; those in flight are the peer's already).
    pub fn push(&mut self, messages: impl IntoIterator<Item = Pending<T>>) -> u64 {
        self.messages.extend(messages);
        let excess = self.messages.len().saturating_sub(self.max_length.max(self.in_flight));
        self.messages.drain(self.in_flight..self.in_flight + excess).map(|p| p.samples).sum()
    }

    /// The oldest `count` messages not yet in flight.
    pub fn unsent(&self, count: usize) -> impl Iterator<Item = &Pending<T>> {
        self.messages.iter().skip(self.in_flight).take(count)
    }

    /// The next `count` unsent messages are now in flight.
    pub fn sending(&mut self, count: usize) {
        self.in_flight = (self.in_flight + count).min(self.messages.len());
    }

    /// The oldest `count` messages in flight arrived; returns their samples.
    pub fn sent_many(&mut self, count: usize) -> u64 {
        self.failures = 0;
        let count = count.min(self.in_flight);
        self.in_flight -= count;
        self.messages.drain(..count).map(|p| p.samples).sum()
    }

    /// Sending failed: nothing in flight counts as arrived (a retry may repeat some:
    /// delivery is at least once). Returns the samples the policy drops now.
    pub fn failed(&mut self) -> u64 {
        self.in_flight = 0;
        self.failures += 1;
        match self.policy {
            Policy::Queue => 0,
            Policy::Default if self.failures < self.max_retry => 0,
            Policy::Default | Policy::Drop | Policy::Handover => {
                self.failures = 0;
                self.messages.drain(..).map(|p| p.samples).sum()
            }
        }
    }

    /// Samples waiting, in flight or not.
    pub fn samples(&self) -> u64 {
        self.messages.iter().map(|p| p.samples).sum()
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether every message waiting is in flight.
    pub fn all_in_flight(&self) -> bool {
        self.in_flight == self.messages.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// What a transport's `send` returns: resolves when the peer has taken the
/// messages (for AMQP, when the broker confirms them).
pub type Receipt = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A peer that an [`OutboxPublisher`] sends to: how batches become messages, and
/// how messages are sent over a connection it opens on demand.
pub trait Transport: Send + 'static {
    /// What is sent (a notification, a frame).
    type Message: Send + Sync + 'static;
    /// Messages handed to one `send`.
    const WINDOW: usize;
    /// Messages in flight at most, their receipts outstanding.
    const MAX_IN_FLIGHT: usize = Self::WINDOW;

    /// The messages for a batch, with their sample counts.
    fn encode(&self, batch: &Batch) -> Vec<Pending<Self::Message>>;

    /// Sends messages; the receipt says whether all arrived. After a failure (of the
    /// send or its receipt) the next call starts from a new connection.
    fn send(&mut self, messages: &[&Self::Message]) -> impl Future<Output = Result<Receipt, String>> + Send;

    /// Forgets the connection after a receipt failed.
    fn disconnect(&mut self);

    /// Closes the connection, if open.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// A receipt for messages that arrived when they were written.
pub fn delivered() -> Receipt {
    Box::pin(std::future::ready(Ok(())))
}

/// Whether [`Outbox::drain`] may return with messages still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Send what waits and return; receipts are collected on later calls.
    Pipelined,
    /// Return only when every receipt is in (or sending failed).
    Complete,
}

/// A local queue with its retry schedule: what a publisher to an unreliable peer
/// holds, what it has in flight, and when it may try again (exponential backoff
/// after each failure).
pub struct Outbox<T> {
    queue: LocalQueue<T>,
    policy: Policy,
    receipts: VecDeque<(usize, Receipt)>,
    backoff: backon::ExponentialBackoff,
    next_attempt: Instant,
    /// Whether sending failed since [`Outbox::take_unreachable`] last asked.
    unreachable: bool,
}

impl<T> Outbox<T> {
    /// An empty outbox under `policy` (see [`LocalQueue::new`]).
    pub fn new(policy: Policy, max_length: usize, max_retry: u32) -> Self {
        Self {
            queue: LocalQueue::new(policy, max_length, max_retry),
            policy,
            receipts: VecDeque::new(),
            backoff: super::reconnect_backoff(),
            next_attempt: Instant::now(),
            unreachable: false,
        }
    }

    /// Whether sending failed since the last call (which forgets it).
    pub fn take_unreachable(&mut self) -> bool {
        std::mem::take(&mut self.unreachable)
    }

    /// Adds messages; returns the samples dropped to stay within the bound.
    pub fn push(&mut self, messages: impl IntoIterator<Item = Pending<T>>) -> u64 {
        self.queue.push(messages)
    }

    /// Samples waiting, in flight or not.
    pub fn pending(&self) -> u64 {
        self.queue.samples()
    }

    /// Lets the next [`drain`](Self::drain) try at once (shutdown).
    pub fn try_now(&mut self) {
        self.next_attempt = Instant::now();
    }

    /// Sends what waits, oldest first, `X::WINDOW` messages per call of the transport
    /// and at most `X::MAX_IN_FLIGHT` awaiting their receipts, unless the backoff says
    /// not yet. Samples count as sent when their receipt comes in. A failure makes the
    /// policy decide what is kept, and schedules the next attempt.
    pub async fn drain<X: Transport<Message = T>>(&mut self, url: &str, transport: &mut X, mode: Drain) -> Delivery {
        let mut delivery = Delivery::default();
        if self.queue.is_empty() {
            return delivery;
        }
        if Instant::now() < self.next_attempt {
            // Still backing off: `drop` does not hold anything meanwhile.
            if self.policy == Policy::Drop {
                delivery.dropped += self.queue.failed();
            }
            return delivery;
        }
        loop {
            // Collect receipts: those already in, or wait for the oldest when the
            // window is full, or when finishing with nothing left to send.
            while let Some((count, receipt)) = self.receipts.front_mut() {
                let must_wait = self.queue.in_flight() >= X::MAX_IN_FLIGHT
                    || (mode == Drain::Complete && self.queue.all_in_flight());
                let result = if must_wait {
                    receipt.await
                } else {
                    match receipt.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                        Poll::Ready(result) => result,
                        Poll::Pending => break,
                    }
                };
                let count = *count;
                self.receipts.pop_front();
                match result {
                    Ok(()) => delivery.sent += self.queue.sent_many(count),
                    Err(error) => {
                        transport.disconnect();
                        self.failed(url, &error, &mut delivery);
                        return delivery;
                    }
                }
            }
            if self.queue.all_in_flight() {
                if self.receipts.is_empty() {
                    self.backoff = super::reconnect_backoff();
                }
                if mode == Drain::Pipelined || self.receipts.is_empty() {
                    return delivery;
                }
                continue;
            }
            if self.queue.in_flight() >= X::MAX_IN_FLIGHT {
                continue;
            }
            let room = X::WINDOW.min(X::MAX_IN_FLIGHT - self.queue.in_flight());
            let messages: Vec<&T> = self.queue.unsent(room).map(|p| &p.message).collect();
            let count = messages.len();
            let result = transport.send(&messages).await;
            drop(messages);
            match result {
                Ok(receipt) => {
                    self.queue.sending(count);
                    self.receipts.push_back((count, receipt));
                }
                Err(error) => {
                    self.failed(url, &error, &mut delivery);
                    return delivery;
                }
            }
        }
    }

    /// Sending failed: nothing in flight arrived; the policy decides what is kept and
    /// the next attempt waits for the backoff.
    fn failed(&mut self, url: &str, error: &str, delivery: &mut Delivery) {
        self.receipts.clear();
        self.unreachable = true;
        let waiting = self.queue.samples();
        let dropped = self.queue.failed();
        delivery.dropped += dropped;
        if self.policy == Policy::Handover {
            // The caller holds the samples, backs off and logs.
            tracing::debug!(publisher = %url, %error, "cannot send; handing the samples back");
            return;
        }
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
        self.next_attempt = Instant::now() + delay;
        tracing::warn!(
            publisher = %url, %error, waiting, dropped, retry_in_ms = delay.as_millis() as u64,
            "cannot send; holding samples as the policy says and retrying later"
        );
    }
}

/// A publisher that holds what it cannot send in an [`Outbox`] and retries over its
/// [`Transport`] (the notifier, TCP). Publishing does not wait for receipts; they are
/// collected as later batches come, on the retry tick, and at flush.
pub struct OutboxPublisher<X: Transport> {
    url: String,
    outbox: Outbox<X::Message>,
    transport: X,
}

impl<X: Transport> OutboxPublisher<X> {
    /// A publisher to `transport` under `policy` (see [`LocalQueue::new`]).
    pub fn new(url: &str, transport: X, policy: Policy, max_length: usize, max_retry: u32) -> Self {
        Self { url: url.into(), outbox: Outbox::new(policy, max_length, max_retry), transport }
    }
}

impl<X: Transport> Publisher for OutboxPublisher<X> {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        // A part at a time: a large host's cycle (hundreds of thousands of samples) is
        // encoded and sent as it goes, so the queue's bound holds what the peer has not
        // taken, not the whole cycle.
        let mut delivery = Delivery::default();
        for part in batch.chunks() {
            let dropped = self.outbox.push(self.transport.encode(&part));
            if dropped > 0 {
                tracing::warn!(publisher = %self.url, dropped, "local queue full; oldest samples dropped");
            }
            let done = self.outbox.drain(&self.url, &mut self.transport, Drain::Pipelined).await;
            delivery.sent += done.sent;
            delivery.dropped += done.dropped + dropped;
        }
        Ok(delivery)
    }

    fn pending(&self) -> u64 {
        self.outbox.pending()
    }

    fn take_unreachable(&mut self) -> bool {
        self.outbox.take_unreachable()
    }

    async fn retry(&mut self) -> Delivery {
        self.outbox.drain(&self.url, &mut self.transport, Drain::Complete).await
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        self.outbox.try_now();
        let delivery = self.outbox.drain(&self.url, &mut self.transport, Drain::Complete).await;
        self.transport.close().await;
        Ok(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: std::ops::Range<u32>) -> Vec<Pending<u32>> {
        ids.map(|message| Pending { message, samples: 10 }).collect()
    }

    #[test]
    fn queue_keeps_the_newest_within_its_bound() {
        let mut queue = LocalQueue::new(Policy::Queue, 3, 100);
        assert_eq!(queue.push(batch(0..5)), 20, "two oldest dropped");
        assert_eq!(queue.failed(), 0);
        assert_eq!(queue.unsent(1).next().unwrap().message, 2);
        assert_eq!(queue.samples(), 30);
    }

    #[test]
    fn messages_in_flight_are_neither_dropped_by_the_bound_nor_resent_until_they_fail() {
        let mut queue = LocalQueue::new(Policy::Queue, 2, 100);
        queue.push(batch(0..2));
        queue.sending(2);
        assert_eq!(queue.push(batch(2..4)), 20, "the two newest beyond the bound, not those in flight");
        assert_eq!(queue.unsent(5).count(), 0);
        assert_eq!(queue.push(batch(4..5)), 10);
        assert_eq!(queue.sent_many(1), 10, "the oldest arrived");
        assert_eq!(queue.push(batch(5..6)), 0);
        assert_eq!(queue.unsent(5).map(|p| p.message).collect::<Vec<_>>(), [5]);
        assert_eq!(queue.failed(), 0, "`queue` keeps all after a failure");
        assert_eq!(queue.unsent(5).map(|p| p.message).collect::<Vec<_>>(), [1, 5], "in flight is sent again");
    }

    #[test]
    fn drop_drops_everything_on_failure() {
        let mut queue = LocalQueue::new(Policy::Drop, 10, 100);
        queue.push(batch(0..2));
        assert_eq!(queue.failed(), 20);
        assert!(queue.is_empty());
    }

    #[test]
    fn default_retries_then_drops() {
        let mut queue = LocalQueue::new(Policy::Default, 10, 3);
        queue.push(batch(0..1));
        assert_eq!(queue.failed(), 0);
        assert_eq!(queue.failed(), 0);
        assert_eq!(queue.failed(), 10);
        queue.push(batch(1..2));
        queue.sending(1);
        assert_eq!(queue.sent_many(1), 10);
        assert!(queue.is_empty());
    }
}
