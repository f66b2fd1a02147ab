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
use s3s::host::MultiDomain;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::access::Access;
use crate::s3::Gateway;

/// Segment buffers of every upload and download in flight together (the codec counts
/// each segment before allocating it, see `andromede_client::MemoryBudget`): what keeps
/// the gateway's memory bounded whatever the number and size of the objects in flight.
pub const CODEC_MEMORY_BYTES: u64 = 96 * 1024 * 1024;
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
        builder.set_host(MultiDomain::new(domains).context("the configured domains")?);
    }
    let mut config = S3Config::default();
    config.xml_max_body_size = XML_BODY_BYTES_MAX;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
    Ok(builder.build())
}

/// Serves `service` on `listener` until Ctrl-C or SIGTERM.
///
/// # Errors
/// The signal handlers cannot be installed.
pub async fn serve(listener: TcpListener, service: S3Service) -> anyhow::Result<()> {
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
        let conn = http.serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                debug!(%peer, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    info!("shutting down: waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("requests still in flight were cut off"),
    }
    Ok(())
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
