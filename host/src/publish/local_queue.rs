//! What a publisher holds while its destination is unreachable, under Ceilometer's
//! policies: `default` retries (a bounded number of times), `queue` keeps up to a
//! bound and drops the oldest first, `drop` drops at once. Every drop is counted.

use super::{Batch, Delivery, PublishError, Publisher};
use std::collections::VecDeque;
use std::future::Future;
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

/// Messages waiting, under a policy.
#[derive(Debug)]
pub struct LocalQueue<T> {
    policy: Policy,
    max_length: usize,
    max_retry: u32,
    failures: u32,
    messages: VecDeque<Pending<T>>,
}

impl<T> LocalQueue<T> {
    /// An empty queue. `max_length` bounds it under every policy (Ceilometer's
    /// `max_queue_length`); `max_retry` is the `default` policy's attempt limit.
    pub fn new(policy: Policy, max_length: usize, max_retry: u32) -> Self {
        Self { policy, max_length: max_length.max(1), max_retry, failures: 0, messages: VecDeque::new() }
    }

    /// Adds messages; returns the samples dropped to stay within the bound.
    pub fn push(&mut self, messages: impl IntoIterator<Item = Pending<T>>) -> u64 {
        self.messages.extend(messages);
        let mut dropped = 0;
        while self.messages.len() > self.max_length {
            dropped += self.messages.pop_front().map_or(0, |p| p.samples);
        }
        dropped
    }

    /// The oldest `count` messages.
    pub fn oldest(&self, count: usize) -> impl Iterator<Item = &Pending<T>> {
        self.messages.iter().take(count)
    }

    /// The oldest `count` messages were sent; returns their samples.
    pub fn sent_many(&mut self, count: usize) -> u64 {
        self.failures = 0;
        self.messages.drain(..count.min(self.messages.len())).map(|p| p.samples).sum()
    }

    /// Sending failed; returns the samples the policy drops now.
    pub fn failed(&mut self) -> u64 {
        self.failures += 1;
        match self.policy {
            Policy::Queue => 0,
            Policy::Default if self.failures < self.max_retry => 0,
            Policy::Default | Policy::Drop => {
                self.failures = 0;
                self.messages.drain(..).map(|p| p.samples).sum()
            }
        }
    }

    /// Samples waiting.
    pub fn samples(&self) -> u64 {
        self.messages.iter().map(|p| p.samples).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// A peer that an [`OutboxPublisher`] sends to: how batches become messages, and
/// how messages are sent over a connection it opens on demand.
pub trait Transport: Send + 'static {
    /// What is sent (a notification, a frame).
    type Message: Send + Sync + 'static;
    /// Messages handed to one `send`.
    const WINDOW: usize;

    /// The messages for a batch, with their sample counts.
    fn encode(&self, batch: &Batch) -> Vec<Pending<Self::Message>>;

    /// Sends messages, all or none; after a failure the next call starts from a new
    /// connection.
    fn send(&mut self, messages: &[&Self::Message]) -> impl Future<Output = Result<(), String>> + Send;

    /// Closes the connection, if open.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// A local queue with its retry schedule: what a publisher to an unreliable peer
/// holds, and when it may try again (exponential backoff after each failure).
pub struct Outbox<T> {
    queue: LocalQueue<T>,
    policy: Policy,
    backoff: backon::ExponentialBackoff,
    next_attempt: Instant,
}

impl<T> Outbox<T> {
    /// An empty outbox under `policy` (see [`LocalQueue::new`]).
    pub fn new(policy: Policy, max_length: usize, max_retry: u32) -> Self {
        Self {
            queue: LocalQueue::new(policy, max_length, max_retry),
            policy,
            backoff: super::reconnect_backoff(),
            next_attempt: Instant::now(),
        }
    }

    /// Adds messages; returns the samples dropped to stay within the bound.
    pub fn push(&mut self, messages: impl IntoIterator<Item = Pending<T>>) -> u64 {
        self.queue.push(messages)
    }

    /// Samples waiting.
    pub fn pending(&self) -> u64 {
        self.queue.samples()
    }

    /// Lets the next [`drain`](Self::drain) try at once (shutdown).
    pub fn try_now(&mut self) {
        self.next_attempt = Instant::now();
    }

    /// Sends what waits, oldest first, `X::WINDOW` messages per call of the transport,
    /// unless the backoff says not yet. A failed send makes the policy decide what is
    /// kept, and schedules the next attempt.
    pub async fn drain<X: Transport<Message = T>>(&mut self, url: &str, transport: &mut X) -> Delivery {
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
        while !self.queue.is_empty() {
            let messages: Vec<&T> = self.queue.oldest(X::WINDOW).map(|p| &p.message).collect();
            let count = messages.len();
            let result = transport.send(&messages).await;
            drop(messages);
            if let Err(error) = result {
                let waiting = self.queue.samples();
                let dropped = self.queue.failed();
                delivery.dropped += dropped;
                let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
                self.next_attempt = Instant::now() + delay;
                tracing::warn!(
                    publisher = %url, %error, waiting, dropped, retry_in_ms = delay.as_millis() as u64,
                    "cannot send; holding samples as the policy says and retrying later"
                );
                return delivery;
            }
            delivery.sent += self.queue.sent_many(count);
        }
        self.backoff = super::reconnect_backoff();
        delivery
    }
}

/// A publisher that holds what it cannot send in an [`Outbox`] and retries over its
/// [`Transport`] (the notifier, TCP).
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
        let dropped = self.outbox.push(self.transport.encode(batch));
        if dropped > 0 {
            tracing::warn!(publisher = %self.url, dropped, "local queue full; oldest samples dropped");
        }
        let mut delivery = self.outbox.drain(&self.url, &mut self.transport).await;
        delivery.dropped += dropped;
        Ok(delivery)
    }

    fn pending(&self) -> u64 {
        self.outbox.pending()
    }

    async fn retry(&mut self) -> Delivery {
        self.outbox.drain(&self.url, &mut self.transport).await
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        self.outbox.try_now();
        let delivery = self.outbox.drain(&self.url, &mut self.transport).await;
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
        assert_eq!(queue.oldest(1).next().unwrap().message, 2);
        assert_eq!(queue.samples(), 30);
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
        assert_eq!(queue.sent_many(1), 10);
        assert!(queue.is_empty());
    }
}
