//! The HTTP side: accepts connections (TCP_NODELAY and TCP keep-alive on, at most
//! [`CONNECTIONS_MAX`] at once), serves HTTP/1.1 with keep-alive through `s3s`, and stops
//! gracefully on Ctrl-C or SIGTERM.
//!
//! Limits: a request's head is at most [`HEADERS_MAX`] headers in at most
//! [`HEAD_BYTES_MAX`] bytes; an XML body at most [`XML_BODY_BYTES_MAX`]; requests are
//! served one at a time per connection, so at most [`CONNECTIONS_MAX`] at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::access::Access;
use crate::s3::Gateway;

/// Segment buffers of every upload and download in flight together (the codec counts
/// each segment before allocating it, see `andromede_client::MemoryBudget`): what keeps
/// the gateway's memory bounded whatever the number and size of the objects in flight.
pub const CODEC_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// Connections served at once; more wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 512;
/// Headers in one request at most.
pub const HEADERS_MAX: usize = 128;
/// Bytes of one request's head (request line and headers) at most.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Bytes of one XML request body at most (a 1000-key DeleteObjects fits).
pub const XML_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Idle time after which TCP keep-alive probes start.
const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time a client has to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time in-flight requests get to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The `s3s` service for `gateway`: auth and grants from `access`, virtual-hosted-style
/// requests under `domains`.
///
/// # Errors
/// A domain `s3s` refuses.
pub fn service(gateway: Gateway, access: Access, domains: &[String]) -> anyhow::Result<S3Service> {
    let mut builder = S3ServiceBuilder::new(gateway);
    builder.set_auth(access.clone());
    builder.set_access(access);
    if !domains.is_empty() {
        builder.set_host(RootDomains::new(domains)?);
    }
    let mut config = S3Config::default();
    config.xml_max_body_size = XML_BODY_BYTES_MAX;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
    Ok(builder.build())
}

/// Virtual-hosted-style addressing under configured root domains: `BUCKET.DOMAIN[:PORT]`
/// names a bucket, `DOMAIN[:PORT]` and every other host (an IP address, `localhost`, a
/// name outside the domains) address path-style. The port never matters.
#[derive(Debug)]
struct RootDomains(Vec<String>);

impl RootDomains {
    fn new(domains: &[String]) -> anyhow::Result<Self> {
        let domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        for domain in &domains {
            let valid = !domain.is_empty()
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                anyhow::bail!(
                    "{domain:?} is not a domain name (labels of letters, digits and '-')"
                );
            }
        }
        Ok(Self(domains))
    }
}

impl S3Host for RootDomains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        for domain in &self.0 {
            if name.eq_ignore_ascii_case(domain) {
                return Ok(VirtualHost::new(domain.as_str()));
            }
            if let Some(bucket) = name
                .len()
                .checked_sub(domain.len() + 1)
                .filter(|&at| {
                    name.as_bytes()[at] == b'.' && name[at + 1..].eq_ignore_ascii_case(domain)
                })
                .map(|at| &name[..at])
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

/// Serves `service` on `listener` (over TLS with `tls`) until Ctrl-C or SIGTERM.
///
/// # Errors
/// The signal handlers cannot be installed.
pub async fn serve(
    listener: TcpListener,
    service: S3Service,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<()> {
    let service = ClosingService::new(service);
    let mut http = ConnBuilder::new(TokioExecutor::new());
    http.http1()
        .keep_alive(true)
        .max_headers(HEADERS_MAX)
        .max_buf_size(HEAD_BYTES_MAX.max(8192));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    warn!(%error, "accepting a connection failed");
                    continue;
                }
            },
            _ = &mut interrupt => break,
            _ = terminate.recv() => break,
        };
        tune(&stream, peer);
        match &tls {
            None => {
                let conn = http.serve_connection(TokioIo::new(stream), service.clone());
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        debug!(%peer, %error, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's task, bounded in time, so a
                // slow or silent client holds only its own slot.
                let (acceptor, http, service) = (acceptor.clone(), http.clone(), service.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(conn.into_owned()).await {
                        debug!(%peer, %error, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
        }
    }
    info!("shutting down: waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("requests still in flight were cut off"),
    }
    Ok(())
}

/// The S3 service, closing the connection after an error answer to a request that
/// carries a body.
///
/// A request refused before its body is read (a failed precondition, a missing key, a
/// denied access) leaves the body unread on the connection, or unsent by a client that
/// waited for `100 Continue` (boto3, the aws CLI). hyper then drops the connection after
/// the answer, and a client that reused it before seeing the close lost its next request
/// ("connection closed before a valid response"; a client retrying it may replay a
/// conditional write). `Connection: close` on the answer tells the client first.
#[derive(Debug, Clone)]
struct ClosingService {
    inner: S3Service,
}

impl ClosingService {
    /// Wraps `inner`.
    fn new(inner: S3Service) -> Self {
        Self { inner }
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for ClosingService {
    type Response =
        <S3Service as hyper::service::Service<http::Request<hyper::body::Incoming>>>::Response;
    type Error =
        <S3Service as hyper::service::Service<http::Request<hyper::body::Incoming>>>::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let with_body = carries_body(&request);
        let answer = hyper::service::Service::call(&self.inner, request);
        Box::pin(async move {
            let mut response = answer.await?;
            let status = response.status();
            if with_body && (status.is_client_error() || status.is_server_error()) {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        })
    }
}

/// Whether a request has a body to read: a non-zero length, or chunks.
fn carries_body<B>(request: &http::Request<B>) -> bool {
    let headers = request.headers();
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

fn tune(stream: &tokio::net::TcpStream, peer: SocketAddr) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%peer, %error, "TCP_NODELAY not set");
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE_IDLE);
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        debug!(%peer, %error, "TCP keep-alive not set");
    }
}

/// A TLS acceptor from PEM files: a certificate chain and its private key.
///
/// # Errors
/// A file that cannot be read, holds no certificate or key, or a key that does not fit
/// the certificate.
pub fn tls_acceptor(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!("reading the TLS certificate {}: {e}", certificate.display())
        })?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", certificate.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("reading the TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS key does not fit the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_a_body_with_a_length_or_chunks() {
        let request = |headers: &[(&str, &str)]| {
            let mut builder = http::Request::builder().method("PUT").uri("/b/k");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(()).unwrap()
        };
        assert!(carries_body(&request(&[("content-length", "5")])));
        assert!(carries_body(&request(&[("transfer-encoding", "chunked")])));
        assert!(!carries_body(&request(&[("content-length", "0")])));
        assert!(!carries_body(&request(&[])));
    }

    #[test]
    fn root_domains_take_the_bucket_from_the_host_and_leave_other_hosts_path_style() {
        let domains = RootDomains::new(&["s3.example.org".to_owned()]).unwrap();
        let bucket = |host| {
            domains
                .parse_host_header(host)
                .unwrap()
                .bucket()
                .map(str::to_owned)
        };
        assert_eq!(bucket("photos.s3.example.org:9000"), Some("photos".into()));
        assert_eq!(
            bucket("my.dotted.bucket.S3.Example.org"),
            Some("my.dotted.bucket".into())
        );
        assert_eq!(bucket("s3.example.org:9000"), None);
        assert_eq!(bucket("127.0.0.1:9000"), None);
        assert_eq!(bucket("localhost"), None);
        assert_eq!(bucket("xs3.example.org"), None);
        assert!(RootDomains::new(&["bad domain".to_owned()]).is_err());
        assert!(RootDomains::new(&["a..b".to_owned()]).is_err());
    }
}
