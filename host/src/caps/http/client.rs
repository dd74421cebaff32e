//! Sending one plugin request: TCP (and the host's TLS) within the connect timeout,
//! HTTP/1.1 through hyper, the whole exchange, body included, before the request's
//! deadline, and the response body cut at its size limit. One connection per request:
//! nothing of one plugin's traffic is shared with another's.

use super::allowed::Origin;
use crate::config::HttpSettings;
use crate::openstack::{Keystone, Token};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, WasiBody};

/// Why the HTTP capability cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// The CA file cannot be read or holds no certificate.
    #[error("agent.http.ca_file `{path}`: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// The host's HTTP client for plugins: its TLS and bounds (`agent.http`).
pub struct HttpClient {
    tls_config: Arc<rustls::ClientConfig>,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_body: u64,
}

/// What bounds one request.
pub struct Bounds {
    /// Connecting (TCP and TLS) may take this long.
    pub connect: Duration,
    /// Everything, the response body to its end, happens before this.
    pub deadline: Instant,
    /// The response's head arrives within this (the guest's `first-byte-timeout`).
    pub first_byte: Option<Duration>,
}

/// What sending resolves to, as `wasi:http` hooks return it.
pub type Sent = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>;

impl HttpClient {
    /// A client with `settings`' TLS roots and bounds.
    pub fn new(settings: &HttpSettings) -> Result<Self, HttpSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpSetupError::Tls(e.to_string()))?;
        let config = if settings.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(root_store(settings)?).with_no_client_auth()
        };
        let tls_config = Arc::new(config);
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(tls_config.clone()),
            tls_config,
            connect_timeout: seconds(settings.connect_timeout, 5.0),
            request_timeout: seconds(settings.request_timeout, 30.0),
            max_body: settings.max_response_mib.saturating_mul(1 << 20),
        })
    }

    /// A client for the host's own requests (Keystone) with the same TLS and bounds.
    pub fn host_client(&self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls_config).clone())
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .build()
    }

    /// The bounds of a request that must end by `wall_deadline` (its plugin call's),
    /// narrowed by what the guest asked for.
    pub fn bounds(&self, wall_deadline: Instant, options: Option<wasmtime_wasi_http::RequestOptions>) -> Bounds {
        let deadline = (Instant::now() + self.request_timeout).min(wall_deadline);
        let options = options.unwrap_or_default();
        let connect = options.connect_timeout.map_or(self.connect_timeout, |c| c.min(self.connect_timeout));
        Bounds { connect, deadline, first_byte: options.first_byte_timeout }
    }

    /// Sends `request` to `origin` within `bounds`; `permit` is held until the
    /// response body is read or dropped. With `auth` (a catalog endpoint), the request
    /// carries the session's token, and its body (at most [`REPLAYED_BODY`]) is kept:
    /// a 401 renews the token and sends the request once more with the new one.
    pub async fn send(
        &self,
        origin: Origin,
        mut request: http::Request<WasiBody>,
        bounds: Bounds,
        permit: OwnedSemaphorePermit,
        auth: Option<(Arc<Keystone>, Arc<Token>)>,
    ) -> Sent {
        // The request line carries the path only; the host header, the authority.
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() =
            http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
        let Some((keystone, token)) = auth else {
            let response = self.exchange(&origin, request, &bounds).await?;
            return self.bounded(response, &bounds, permit);
        };
        let (head, body) = request.into_parts();
        let body =
            tokio::time::timeout_at(bounds.deadline, http_body_util::Limited::new(body, REPLAYED_BODY).collect())
                .await
                .map_err(|_| Error::HttpResponseTimeout)?
                .map_err(|_| Error::HttpRequestBodySize(Some(REPLAYED_BODY as u64)))?
                .to_bytes();
        let mut response = self.exchange(&origin, with_token(&head, &body, &token)?, &bounds).await?;
        if response.status() == 401 {
            keystone.reject(&token);
            let renewed = tokio::time::timeout_at(bounds.deadline, keystone.token())
                .await
                .map_err(|_| Error::HttpResponseTimeout)?
                .map_err(|e| Error::InternalError(Some(e.to_string())))?;
            tracing::info!(%origin, "the token was refused (401); sending the request again with a new one");
            response = self.exchange(&origin, with_token(&head, &body, &renewed)?, &bounds).await?;
        }
        self.bounded(response, &bounds, permit)
    }

    /// The response as the plugin gets it: Keystone's token header removed, its body
    /// bounded in size and time, holding the plugin's request permit.
    fn bounded(
        &self,
        mut response: http::Response<hyper::body::Incoming>,
        bounds: &Bounds,
        permit: OwnedSemaphorePermit,
    ) -> Sent {
        // Keystone's token header never reaches a plugin.
        response.headers_mut().remove("x-subject-token");
        let declared = response.body().size_hint().exact();
        if let Some(length) = declared.filter(|length| *length > self.max_body) {
            // The error carries the limit, as when a body without a length reaches it.
            tracing::debug!(declared = length, limit = self.max_body, "response body declared over the limit");
            return Err(Error::HttpResponseBodySize(Some(self.max_body)));
        }
        let response = response.map(|incoming| {
            BoundedBody {
                incoming,
                deadline: Box::pin(tokio::time::sleep_until(bounds.deadline)),
                left: self.max_body,
                limit: self.max_body,
                done: false,
                _permit: permit,
            }
            .boxed_unsync()
        });
        Ok((response, Box::new(std::future::ready(Ok(())))))
    }

    /// One request and the head of its response, on a connection of its own.
    async fn exchange(
        &self,
        origin: &Origin,
        request: http::Request<WasiBody>,
        bounds: &Bounds,
    ) -> Result<http::Response<hyper::body::Incoming>, Error> {
        let connect_by = (Instant::now() + bounds.connect).min(bounds.deadline);
        let mut sender = tokio::time::timeout_at(connect_by, self.connect(origin, bounds.deadline))
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
        let head_by = bounds.first_byte.map_or(bounds.deadline, |f| (Instant::now() + f).min(bounds.deadline));
        tokio::time::timeout_at(head_by, sender.send_request(request))
            .await
            .map_err(|_| Error::HttpResponseTimeout)?
            .map_err(Error::Hyper)
    }

    /// A connection to `origin`, its driver spawned (and stopped at `deadline`).
    async fn connect(
        &self,
        origin: &Origin,
        deadline: Instant,
    ) -> Result<hyper::client::conn::http1::SendRequest<WasiBody>, Error> {
        let tcp = TcpStream::connect((origin.host.trim_start_matches('[').trim_end_matches(']'), origin.port))
            .await
            .map_err(Error::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = if origin.https {
            let name = server_name(&origin.host)?;
            let tls = self.tls.connect(name, tcp).await.map_err(Error::Tls)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            (sender, Box::pin(connection) as Pin<Box<dyn Future<Output = _> + Send>>)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            (sender, Box::pin(connection) as Pin<Box<dyn Future<Output = _> + Send>>)
        };
        tokio::spawn(async move {
            // The connection ends with its request; past the deadline (and a grace, so
            // that the request's own timeout is what the plugin sees) it is dropped,
            // and with it the socket.
            if let Ok(Err(error)) = tokio::time::timeout_at(deadline + DRIVER_GRACE, connection).await {
                tracing::debug!(%error, "plugin HTTP connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// How long a connection may outlive its request's deadline before it is dropped.
const DRIVER_GRACE: Duration = Duration::from_secs(1);

/// The largest request body a catalog request may have: it is kept, to be sent again
/// after a 401.
pub const REPLAYED_BODY: usize = 1 << 20;

/// A request of this head and body with the token, replacing any the plugin set.
fn with_token(head: &http::request::Parts, body: &Bytes, token: &Token) -> Result<http::Request<WasiBody>, Error> {
    let mut value = http::HeaderValue::from_str(token.secret())
        .map_err(|_| Error::InternalError(Some("the token is not a header value".into())))?;
    value.set_sensitive(true);
    let mut request = http::Request::builder().method(head.method.clone()).uri(head.uri.clone()).version(head.version);
    if let Some(headers) = request.headers_mut() {
        *headers = head.headers.clone();
        headers.insert("x-auth-token", value);
    }
    let body = http_body_util::Full::new(body.clone()).map_err(|never| match never {}).boxed_unsync();
    request.body(body).map_err(|_| Error::HttpRequestUriInvalid)
}

fn seconds(value: f64, default: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs_f64(default))
}

/// The CAs a server's certificate must chain to: the CA file's, or Mozilla's.
fn root_store(settings: &HttpSettings) -> Result<rustls::RootCertStore, HttpSetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let Some(path) = &settings.ca_file else {
        return Ok(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() });
    };
    let bad = |message: String| HttpSetupError::CaFile { path: path.clone(), message };
    let mut store = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        store.add(certificate).map_err(|e| bad(format!("a certificate is refused: {e}")))?;
    }
    if store.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(store)
}

/// The name a TLS server's certificate must carry: an address or a DNS name.
fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(address) = bare.parse::<std::net::IpAddr>() {
        return Ok(address.into());
    }
    rustls::pki_types::ServerName::try_from(bare.to_string()).map_err(|_| Error::HttpRequestUriInvalid)
}

/// A response body that ends in an error at the request's deadline or past its size
/// limit, and holds its plugin's request permit while it lives.
struct BoundedBody {
    incoming: hyper::body::Incoming,
    deadline: Pin<Box<Sleep>>,
    left: u64,
    limit: u64,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.incoming).poll_frame(cx);
        let outcome: Result<(), Error> = match polled {
            Poll::Ready(None) => {
                self.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Ok(frame))) => {
                let length = frame.data_ref().map_or(0, |data| data.len() as u64);
                match self.left.checked_sub(length) {
                    Some(left) => {
                        self.left = left;
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    None => Err(Error::HttpResponseBodySize(Some(self.limit))),
                }
            }
            Poll::Ready(Some(Err(error))) => Err(Error::Hyper(error)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Err(Error::HttpResponseTimeout),
                Poll::Pending => return Poll::Pending,
            },
        };
        self.done = true;
        Poll::Ready(outcome.err().map(Err))
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.incoming.is_end_stream()
    }
}

/// Accepts any server certificate (`agent.http.insecure`); handshake signatures are
/// still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
