//! `notifier://`: samples to RabbitMQ as oslo.messaging notifications, exactly as
//! Ceilometer's polling agent sends them, so that an unchanged
//! `ceilometer-agent-notification` consumes them.
//!
//! `notifier://[user:password@]host[:port][/vhost]?topic=notifications&exchange=ceilometer&batch_size=50&policy=default|queue|drop&max_queue_length=1024&max_retry=100&per_meter_topic=0&ssl=0&ca_certs=/path/ca.pem`
//!
//! Each notification goes to the topic exchange `exchange` with routing key
//! `<topic>.sample` (and, with `per_meter_topic`, again to `<topic>.<meter>.sample`),
//! whose queue of the same name is declared and bound so nothing is lost before a
//! consumer exists. Notifications count as sent when the broker confirms them; up to
//! 1024 are in flight at once, so encoding overlaps the broker's work. While the broker is
//! unreachable the policy decides what is kept; the connection is re-opened with
//! exponential backoff.

use super::local_queue::{OutboxPublisher, Pending, Policy, Receipt, Transport};
use super::options::Query;
use super::{Batch, PublishError};
use crate::registry::MeterHandle;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// How long to wait for a connection, or for a window's confirms, before calling it
/// failed.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// Notifications handed to lapin at once.
const CONFIRM_WINDOW: usize = 256;
/// Notifications handed to lapin together (see [`Link::publish`]).
const PUBLISHED_TOGETHER: usize = 16;

/// Notifications published and not yet confirmed, at most.
const MAX_UNCONFIRMED: usize = 4 * CONFIRM_WINDOW;

/// The notifier's settings, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierOptions {
    /// `amqp://` or `amqps://` URI of the broker.
    pub amqp_uri: String,
    /// Notification topic (`notifications`).
    pub topic: String,
    /// Control exchange (`ceilometer`).
    pub exchange: String,
    /// Samples per notification (50).
    pub batch_size: usize,
    /// What to do while the broker is unreachable.
    pub policy: Policy,
    /// Notifications held at most while the broker is unreachable (1024).
    pub max_queue_length: usize,
    /// Failed attempts in a row before the `default` policy drops (100).
    pub max_retry: u32,
    /// Also publish each meter's samples to `<topic>.<meter>`.
    pub per_meter_topic: bool,
    /// CA certificates (PEM file) to verify the broker with, for `ssl=1`; the
    /// system's web roots otherwise.
    pub ca_certs: Option<std::path::PathBuf>,
}

impl NotifierOptions {
    /// Reads a `notifier://` URL.
    pub fn from_url(url: &url::Url) -> Result<Self, String> {
        let mut query = Query::new(url);
        let tls = query.flag("ssl")?;
        let options = Self {
            amqp_uri: amqp_uri(url, tls),
            topic: query.text("topic").unwrap_or_else(|| "notifications".into()),
            exchange: query.text("exchange").unwrap_or_else(|| "ceilometer".into()),
            batch_size: query.parse("batch_size", 50)?,
            policy: query
                .text("policy")
                .map(|p| {
                    p.parse().map_err(|()| {
                        format!(
                            "policy `{p}` is not one of default, queue, drop, disk{}",
                            crate::suggest::did_you_mean(&p, ["default", "queue", "drop", "disk"])
                        )
                    })
                })
                .transpose()?
                .unwrap_or(Policy::Default),
            max_queue_length: query.parse("max_queue_length", 1024)?,
            max_retry: query.parse("max_retry", 100)?,
            per_meter_topic: query.flag("per_meter_topic")?,
            ca_certs: query.text("ca_certs").map(Into::into),
        };
        if options.ca_certs.is_some() && !tls {
            return Err("`ca_certs` needs `ssl=1`".into());
        }
        query.finish()?;
        if options.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        Ok(options)
    }
}

/// The broker's `amqp://` (or, with `tls`, `amqps://`) URI from a URL's user,
/// password, host, port and vhost; RabbitMQ's defaults (`guest:guest@127.0.0.1`, vhost
/// `/`) for what it leaves out.
pub(crate) fn amqp_uri(url: &url::Url, tls: bool) -> String {
    let host = url.host_str().filter(|h| !h.is_empty()).unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(if tls { 5671 } else { 5672 });
    let (user, password) = match url.username() {
        "" => ("guest", url.password().unwrap_or("guest")),
        user => (user, url.password().unwrap_or("")),
    };
    let vhost = match url.path() {
        "" | "/" => "%2f".to_string(),
        path => path.trim_start_matches('/').to_string(),
    };
    let scheme = if tls { "amqps" } else { "amqp" };
    format!("{scheme}://{user}:{password}@{host}:{port}/{vhost}")
}

/// A notification ready to publish.
#[derive(Debug)]
pub struct Notification {
    routing_key: String,
    body: Vec<u8>,
}

/// An open connection and its confirming channel.
struct Link {
    connection: Connection,
    channel: Channel,
    declared: HashSet<String>,
}

/// A publisher to RabbitMQ; it reads its CA file now and connects on first use.
pub fn publisher(url: &str, options: NotifierOptions, secret: String) -> Result<OutboxPublisher<Broker>, PublishError> {
    let ca_pem = match &options.ca_certs {
        None => None,
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| PublishError::Url {
            url: url.to_string(),
            message: format!("cannot read ca_certs {}: {e}", path.display()),
        })?),
    };
    let (policy, max_length, max_retry) = (options.policy, options.max_queue_length, options.max_retry);
    let broker = Broker { url: url.into(), options, secret, ca_pem, link: None };
    Ok(OutboxPublisher::new(url, broker, policy, max_length, max_retry))
}

/// The broker, and the connection to it, opened on demand.
pub struct Broker {
    url: String,
    options: NotifierOptions,
    secret: String,
    ca_pem: Option<String>,
    link: Option<Link>,
}

impl Transport for Broker {
    type Message = Notification;
    const WINDOW: usize = CONFIRM_WINDOW;
    const MAX_IN_FLIGHT: usize = MAX_UNCONFIRMED;

    /// The notifications for a batch: `batch_size` samples each, to the topic, and per
    /// meter if asked.
    fn encode(&self, batch: &Batch) -> Vec<Pending<Notification>> {
        if !self.options.per_meter_topic {
            let routing_key = format!("{}.sample", self.options.topic);
            return super::metering::notification_bodies(batch, &self.secret, self.options.batch_size)
                .into_iter()
                .map(|(body, samples)| Pending {
                    message: Notification { routing_key: routing_key.clone(), body },
                    samples,
                })
                .collect();
        }
        let messages = super::metering::nested_json_messages(batch, &self.secret);
        let mut out = Vec::new();
        let mut add = |topic: &str, messages: &[&[u8]]| {
            for chunk in messages.chunks(self.options.batch_size) {
                out.push(Pending {
                    message: Notification {
                        routing_key: format!("{topic}.sample"),
                        body: super::metering::notification_body(chunk.iter().copied()),
                    },
                    samples: chunk.len() as u64,
                });
            }
        };
        let all: Vec<&[u8]> = messages.iter().map(|(_, m)| m).collect();
        add(&self.options.topic, &all);
        if self.options.per_meter_topic {
            let mut by_meter: BTreeMap<MeterHandle, Vec<&[u8]>> = BTreeMap::new();
            for (meter, message) in messages.iter() {
                by_meter.entry(meter).or_default().push(message);
            }
            for (meter, messages) in by_meter {
                let Some(meter) = batch.registry.meter(meter) else { continue };
                add(&format!("{}.{}", self.options.topic, meter.name), &messages);
            }
        }
        out
    }

    async fn send(&mut self, window: &[&Notification]) -> Result<Receipt, String> {
        let link = match &mut self.link {
            Some(link) => link,
            None => {
                crate::self_metrics::get()
                    .publisher_connections
                    .with_label_values(&[&super::shown_url(&self.url)])
                    .inc();
                let link = connect(&self.options.amqp_uri, self.ca_pem.as_deref()).await?;
                tracing::info!(publisher = %self.url, "connected to the broker");
                self.link.insert(link)
            }
        };
        let result = link.publish(&self.options.exchange, window).await;
        if result.is_err() {
            self.link = None;
        }
        result
    }

    fn disconnect(&mut self) {
        self.link = None;
    }

    async fn close(&mut self) {
        if let Some(link) = self.link.take() {
            let _ = link.connection.close(200, "pollen shutting down".into()).await;
        }
    }
}

impl Link {
    /// Publishes notifications, all in flight at once; the receipt resolves when the
    /// broker has confirmed every one, fails on a nack or when no confirm comes in
    /// time. On any failure none counts as sent (delivery is at least once: a retry
    /// may repeat some).
    async fn publish(&mut self, exchange: &str, notifications: &[&Notification]) -> Result<Receipt, String> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into());
        let exchange_name: lapin::types::ShortString = exchange.into();
        let publish_all = async {
            for notification in notifications {
                if !self.declared.contains(&notification.routing_key) {
                    declare(&self.channel, exchange, &notification.routing_key).await?;
                    self.declared.insert(notification.routing_key.clone());
                }
            }
            // A few at a time: each publish hands a copy of its frames to lapin's I/O
            // thread when first polled (in order), and the thread writes them all in one
            // wake-up. One by one, every message cost a round trip to that thread and
            // back; a whole window at once, a copy of every body in it.
            let mut confirms = Vec::with_capacity(notifications.len());
            for group in notifications.chunks(PUBLISHED_TOGETHER) {
                let publishes = group.iter().map(|notification| {
                    self.channel.basic_publish(
                        exchange_name.clone(),
                        notification.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &notification.body,
                        properties.clone(),
                    )
                });
                confirms.extend(futures::future::try_join_all(publishes).await.map_err(|e| e.to_string())?);
            }
            Ok::<_, String>(confirms)
        };
        let confirms = tokio::time::timeout(BROKER_TIMEOUT, publish_all)
            .await
            .map_err(|_| "the broker took no message in time".to_string())??;
        let confirmed = async move {
            for confirm in confirms {
                if !confirm.await.map_err(|e| e.to_string())?.is_ack() {
                    return Err("the broker refused a message (nack)".to_string());
                }
            }
            Ok(())
        };
        let deadline = tokio::time::timeout(BROKER_TIMEOUT, confirmed);
        Ok(Box::pin(async move { deadline.await.map_err(|_| "no confirm from the broker in time".to_string())? }))
    }
}

/// Opens a connection (verifying TLS with `ca_pem` if given) and a channel in confirm
/// mode.
async fn connect(amqp_uri: &str, ca_pem: Option<&str>) -> Result<Link, String> {
    let connect = async {
        let properties = ConnectionProperties::default();
        let connection = match ca_pem {
            None => Connection::connect(amqp_uri, properties).await?,
            Some(pem) => {
                let tls = lapin::tcp::OwnedTLSConfig { identity: None, cert_chain: Some(pem.to_string()) };
                Connection::connect_with_config(amqp_uri, properties, tls, lapin::runtime::default_runtime()?).await?
            }
        };
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok::<_, lapin::Error>(Link { connection, channel, declared: HashSet::new() })
    };
    tokio::time::timeout(BROKER_TIMEOUT, connect)
        .await
        .map_err(|_| "connecting to the broker timed out".to_string())?
        .map_err(|e| format!("cannot connect to the broker: {e}"))
}

/// Declares the topic exchange and the queue named by the routing key, bound to it,
/// as oslo.messaging's rabbit driver does for notifications (neither durable nor
/// auto-deleted).
pub(crate) async fn declare(channel: &Channel, exchange: &str, routing_key: &str) -> Result<(), String> {
    let fail = |e: lapin::Error| format!("cannot declare `{exchange}`/`{routing_key}`: {e}");
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(fail)?;
    channel
        .queue_declare(routing_key.into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .map_err(fail)?;
    channel
        .queue_bind(
            routing_key.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(fail)
}
