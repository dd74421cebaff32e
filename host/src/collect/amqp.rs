//! The AMQP input: consumes oslo.messaging notification queues on RabbitMQ
//! (`notifications.sample`, as Pollen and `ceilometer-polling` publish, and
//! `metering.sample`, as `ceilometer-agent-notification`'s `notifier://` publisher
//! does), each message a v2 envelope of a batch of metering messages.
//!
//! Delivery is at least once: a message is acknowledged only when every publisher of
//! its sinks is done with its samples (a database publisher: committed); one that
//! failed is handed back with backoff, and retried alone (not in a batch with
//! others), so that one bad message never holds the others back. A message that cannot
//! be read, or failed `max_attempts` times, goes to the dead-letter queue (with why, in
//! its headers) instead of being redelivered for ever. Prefetch bounds what is in
//! flight; several collectors on one queue share it (competing consumers).

use super::{Arrival, Counters};
use crate::publish::metering::decode::{self, ReceivedSample};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long connecting and declaring may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages whose failures are remembered at most (then the memory starts again).
const REMEMBERED: usize = 100_000;

/// An `amqp://` input's settings, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpInput {
    /// The broker's URI (`amqp://user:password@host:port/vhost`).
    pub amqp_uri: String,
    /// The queues consumed, each bound to the exchange by its own name.
    pub queues: Vec<String>,
    /// The control exchange (`ceilometer`).
    pub exchange: String,
    /// Messages delivered and not yet acknowledged, per queue, at most.
    pub prefetch: u16,
    /// Failed attempts after which a message goes to the dead-letter queue.
    pub max_attempts: u32,
    /// The dead-letter queue (durable).
    pub dead_letter: String,
}

impl AmqpInput {
    /// Reads `amqp://[user:password@]host[:port][/vhost]?queues=notifications.sample,metering.sample&exchange=ceilometer&prefetch=100&max_attempts=5&dead_letter=pollen.dead-letter`
    /// (`rabbit://`, as oslo.messaging's `transport_url`, is the same).
    pub fn from_url(text: &str) -> Result<Self, String> {
        let url =
            url::Url::parse(text).map_err(|e| format!("not a URL ({e}); e.g. `amqp://guest:guest@127.0.0.1:5672/`"))?;
        let mut query = crate::publish::options::Query::new(&url);
        let queues: Vec<String> = query
            .text("queues")
            .unwrap_or_else(|| "notifications.sample,metering.sample".into())
            .split(',')
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(String::from)
            .collect();
        let input = Self {
            amqp_uri: crate::publish::notifier::amqp_uri(&url, false),
            queues,
            exchange: query.text("exchange").unwrap_or_else(|| "ceilometer".into()),
            prefetch: query.parse("prefetch", 100)?,
            max_attempts: query.parse("max_attempts", 5)?,
            dead_letter: query.text("dead_letter").unwrap_or_else(|| "pollen.dead-letter".into()),
        };
        query.finish()?;
        if input.queues.is_empty() {
            return Err("`queues` lists no queue".into());
        }
        if input.prefetch == 0 || input.max_attempts == 0 {
            return Err("`prefetch` and `max_attempts` must be at least 1".into());
        }
        Ok(input)
    }
}

/// What the collector says of a message once its samples are delivered (or not).
struct Settled {
    acker: lapin::Acker,
    key: u64,
    delivered: bool,
}

/// One message in flight: settled when the last batch holding its samples is done.
pub struct MessageAck {
    acker: Option<lapin::Acker>,
    key: u64,
    failed: AtomicBool,
    settled: mpsc::UnboundedSender<Settled>,
}

impl MessageAck {
    /// A publisher could not deliver some of its samples.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl Drop for MessageAck {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            let delivered = !self.failed.load(Ordering::Relaxed);
            let _ = self.settled.send(Settled { acker, key: self.key, delivered });
        }
    }
}

/// Consumes until `stop` turns true, reconnecting (with backoff) whenever the broker
/// goes away; then waits for the messages in flight to be settled and their
/// acknowledgements sent, and closes.
pub(super) async fn consume(
    config: AmqpInput,
    name: String,
    input: usize,
    out: mpsc::Sender<Arrival>,
    secrets: Arc<Vec<String>>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let (settled_sender, mut settled) = mpsc::unbounded_channel::<Settled>();
    let mut state = State {
        attempts: HashMap::new(),
        in_flight: 0,
        read: decode::ReadCache::default(),
        bodies: foldhash::quality::RandomState::default(),
        acks: tokio::task::JoinSet::new(),
    };
    let mut backoff = crate::publish::reconnect_backoff();
    let mut failures = 0u64;
    while !*stop.borrow() {
        let opened = match tokio::time::timeout(BROKER_TIMEOUT, open(&config)).await {
            Ok(opened) => opened,
            Err(_) => Err("the broker did not answer in time".to_string()),
        };
        let session = match opened {
            Ok(session) => session,
            Err(why) => {
                counters.consuming(&name, false);
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(input = %name, failures, "cannot consume: {why}");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if failures > 0 {
            tracing::info!(input = %name, "consuming again");
        }
        counters.consuming(&name, true);
        tracing::info!(input = %name, queues = ?config.queues, "collector input consuming");
        failures = 0;
        backoff = crate::publish::reconnect_backoff();
        let mut deliveries = futures::stream::select_all(session.consumers.clone());
        loop {
            tokio::select! {
                next = deliveries.next() => {
                    let delivery = match next {
                        Some(Ok(delivery)) => delivery,
                        Some(Err(error)) => {
                            tracing::warn!(input = %name, "the broker connection failed: {error}; reconnecting");
                            counters.consuming(&name, false);
                            break;
                        }
                        None => {
                            tracing::warn!(input = %name, "the broker ended the consumers; reconnecting");
                            counters.consuming(&name, false);
                            break;
                        }
                    };
                    let taken = state.take(delivery, &config, &session, &name, input, &secrets, &counters, &settled_sender);
                    if let Some(arrival) = taken.await {
                        if out.send(arrival).await.is_err() {
                            return;
                        }
                    }
                }
                Some(done) = settled.recv() => state.settle(done, &counters),
                _ = stop.changed() => break,
            }
        }
        if *stop.borrow() {
            for consumer in &session.consumers {
                let _ = session.channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
            }
            // What was taken is settled as its publishers finish (the collector drains
            // them before it drops its last sender); the rest goes back to the queue
            // when the connection closes.
            drop(out);
            while state.in_flight > 0 {
                match settled.recv().await {
                    Some(done) => state.settle(done, &counters),
                    None => break,
                }
            }
            // The acknowledgements go out before the connection closes: one sent after
            // would be lost, and its message delivered again.
            while state.acks.join_next().await.is_some() {}
            let _ = session.connection.close(200, "pollen collector stopping".into()).await;
            return;
        }
    }
}

/// An open connection: the consuming channel, its consumers, and a confirming
/// channel for the dead-letter queue.
struct Session {
    connection: Connection,
    channel: lapin::Channel,
    consumers: Vec<lapin::Consumer>,
    dead_letters: lapin::Channel,
}

async fn open(config: &AmqpInput) -> Result<Session, String> {
    let fail = |e: lapin::Error| e.to_string();
    let connection = Connection::connect(&config.amqp_uri, ConnectionProperties::default()).await.map_err(fail)?;
    let channel = connection.create_channel().await.map_err(fail)?;
    channel.basic_qos(config.prefetch, BasicQosOptions::default()).await.map_err(fail)?;
    let mut consumers = Vec::new();
    for queue in &config.queues {
        crate::publish::notifier::declare(&channel, &config.exchange, queue).await?;
        let tag = format!("pollen-collect-{}-{queue}", std::process::id());
        consumers.push(
            channel
                .basic_consume(queue.as_str().into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
                .await
                .map_err(fail)?,
        );
    }
    let dead_letters = connection.create_channel().await.map_err(fail)?;
    dead_letters.confirm_select(ConfirmSelectOptions::default()).await.map_err(fail)?;
    dead_letters
        .queue_declare(
            config.dead_letter.as_str().into(),
            QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot declare the dead-letter queue `{}`: {e}", config.dead_letter))?;
    Ok(Session { connection, channel, consumers, dead_letters })
}

/// What the input remembers across connections.
struct State {
    /// Failed attempts of messages not yet settled, by a hash of their body.
    attempts: HashMap<u64, u32>,
    /// Messages handed on and not yet settled.
    in_flight: usize,
    /// What reading notifications keeps between them.
    read: decode::ReadCache,
    /// How a body is hashed into its key (a fast hash: bodies are tens of KiB).
    bodies: foldhash::quality::RandomState,
    /// Acknowledgements being sent, awaited before the connection closes.
    acks: tokio::task::JoinSet<()>,
}

impl State {
    /// Reads a delivery: its samples to hand on, or nothing (dead-lettered, or every
    /// sample refused: acknowledged at once).
    #[allow(clippy::too_many_arguments)]
    async fn take(
        &mut self,
        delivery: lapin::message::Delivery,
        config: &AmqpInput,
        session: &Session,
        name: &str,
        input: usize,
        secrets: &[String],
        counters: &Counters,
        settled: &mpsc::UnboundedSender<Settled>,
    ) -> Option<Arrival> {
        counters.received.fetch_add(1, Ordering::Relaxed);
        let key = self.bodies.hash_one(&delivery.data[..]);
        let attempts = self.attempts.get(&key).copied().unwrap_or_default();
        if attempts >= config.max_attempts {
            let why = format!("failed {attempts} times; last: a publisher of its sinks could not deliver its samples");
            dead_letter(delivery, &why, attempts, config, session, name, counters).await;
            self.attempts.remove(&key);
            return None;
        }
        let mut samples: Vec<ReceivedSample> = Vec::with_capacity(50);
        let read = decode::read_notification(&delivery.data, secrets, &mut self.read, |read| match read {
            Ok(sample) => samples.push(sample),
            Err(error) => counters.refuse_decoded(name, &error),
        });
        if let Err(error) = read {
            counters.refuse_decoded(name, &error);
            dead_letter(delivery, &error.to_string(), attempts, config, session, name, counters).await;
            return None;
        }
        if samples.is_empty() {
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            return None;
        }
        self.in_flight += 1;
        let ack = Arc::new(MessageAck {
            acker: Some(delivery.acker),
            key,
            failed: AtomicBool::new(false),
            settled: settled.clone(),
        });
        Some(Arrival { input, samples, ack: Some(ack), alone: attempts > 0 })
    }

    /// Acknowledges a delivered message, or hands a failed one back after a backoff
    /// that grows with its attempts.
    fn settle(&mut self, done: Settled, counters: &Arc<Counters>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        while self.acks.try_join_next().is_some() {}
        if done.delivered {
            self.attempts.remove(&done.key);
            let counters = Arc::clone(counters);
            self.acks.spawn(async move {
                if done.acker.ack(BasicAckOptions::default()).await.is_ok() {
                    counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            });
            return;
        }
        if self.attempts.len() >= REMEMBERED {
            self.attempts.clear();
        }
        let attempts = self.attempts.entry(done.key).or_default();
        *attempts += 1;
        counters.requeued.fetch_add(1, Ordering::Relaxed);
        let delay = Duration::from_millis(100 << (*attempts).min(8));
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = done.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
        });
    }
}

/// Moves a message to the dead-letter queue (its body as it came, why in its
/// headers), then acknowledges it; if the dead-letter queue does not take it, the
/// message is handed back instead, never lost.
async fn dead_letter(
    delivery: lapin::message::Delivery,
    why: &str,
    attempts: u32,
    config: &AmqpInput,
    session: &Session,
    name: &str,
    counters: &Counters,
) {
    let mut headers = FieldTable::default();
    headers.insert("x-pollen-reason".into(), AMQPValue::LongString(why.into()));
    headers.insert("x-pollen-queue".into(), AMQPValue::LongString(delivery.routing_key.as_str().into()));
    headers.insert("x-pollen-attempts".into(), AMQPValue::LongUInt(attempts));
    let properties = BasicProperties::default().with_content_type("application/json".into()).with_headers(headers);
    let published = async {
        session
            .dead_letters
            .basic_publish(
                "".into(),
                config.dead_letter.as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await
    };
    match tokio::time::timeout(BROKER_TIMEOUT, published).await {
        Ok(Ok(confirmation)) if confirmation.is_ack() => {
            let count = counters.dead_lettered.fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_power_of_two() {
                tracing::warn!(input = %name, count, queue = %config.dead_letter, "message dead-lettered: {why}");
            }
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        }
        _ => {
            tracing::error!(input = %name, queue = %config.dead_letter, "the dead-letter queue did not take a message; it goes back to its queue");
            let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_to_ceilometer_s_queues_and_name_what_is_wrong() {
        let input = AmqpInput::from_url("amqp://").unwrap();
        assert_eq!(input.amqp_uri, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(input.queues, ["notifications.sample", "metering.sample"]);
        assert_eq!((input.exchange.as_str(), input.prefetch, input.max_attempts), ("ceilometer", 100, 5));
        let input =
            AmqpInput::from_url("rabbit://u:p@mq:5673/telemetry?queues=metering.sample&prefetch=10&max_attempts=2")
                .unwrap();
        assert_eq!(input.amqp_uri, "amqp://u:p@mq:5673/telemetry");
        assert_eq!((input.queues.len(), input.prefetch, input.max_attempts), (1, 10, 2));
        let error = AmqpInput::from_url("amqp://?prefech=3").unwrap_err();
        assert!(error.contains("did you mean `prefetch`"), "{error}");
        assert!(AmqpInput::from_url("amqp://?queues=").unwrap_err().contains("no queue"));
        assert!(AmqpInput::from_url("amqp://?max_attempts=0").is_err());
    }
}
