//! The broker's optional HTTP side (`http_listen`): `/metrics` for
//! Prometheus, and a status page for a person (`/`, fed by
//! `/status.json`). It only reads the census. Its tasks are the server's,
//! of kind "http", and end when it stops; it is bounded as the MQTT side
//! is: a few connections, a deadline on each request's head and on each
//! connection's life, and no request body is ever read.

mod metrics;
mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::net::Listener;
use crate::server::Server;
use metrics::Metrics;
use page::{History, Sample};

/// HTTP connections open at once; one more is closed as soon as accepted.
/// A scraper and a few people's browsers need a handful.
pub const CONNECTIONS_MAX: usize = 16;
/// A request's head must arrive within this; it also closes a kept-alive
/// connection that sends no next request.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is asked to close after this, however busy: a client that
/// stops reading our replies cannot keep its slot.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long a connection asked to close may take to finish its request.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Bytes hyper may buffer for a connection (its minimum): request heads
/// are a few hundred bytes.
const BUFFER_MAX_BYTES: usize = 8192;
const HEADERS_MAX: usize = 32;

/// What every connection of one HTTP listener serves from.
struct Site {
    server: Server,
    metrics: Metrics,
    history: Mutex<History>,
}

impl Site {
    fn sample(&self) {
        let sample = Sample::now(&self.server);
        self.history().push(sample);
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/" => {
                let mut response = reply(StatusCode::OK, "text/html; charset=utf-8", page::PAGE);
                // The page loads nothing from elsewhere, and a browser
                // holds it to that.
                response.headers_mut().insert(
                    CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'none'; script-src 'unsafe-inline'; \
                         style-src 'unsafe-inline'; connect-src 'self'",
                    ),
                );
                response
            }
            "/metrics" => reply(StatusCode::OK, metrics::CONTENT_TYPE, self.metrics.encode()),
            "/status.json" => {
                let samples = self.history().samples();
                let body = page::status_json(&self.server, samples);
                reply(StatusCode::OK, "application/json", body)
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Accepts HTTP connections until the server stops, and samples the
/// history the page plots.
pub(crate) async fn serve<L: Listener>(mut listener: L, server: Server) {
    let site = Arc::new(Site {
        metrics: Metrics::new(server.clone()),
        history: Mutex::default(),
        server: server.clone(),
    });
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let stopping = server.stopping().clone();
    let mut samples = tokio::time::interval(page::SAMPLE_EVERY);
    samples.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            () = stopping.cancelled() => return,
            _ = samples.tick() => {
                site.sample();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, CONNECTIONS_MAX, "HTTP connection limit reached; closed");
                    continue;
                };
                let task = connection(stream, peer, site.clone(), slot, stopping.clone());
                server
                    .registry()
                    .spawn("http", format!("conn {peer}"), task);
            }
            Err(error) => {
                // As for MQTT: out of file descriptors, usually.
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection until the client closes it, it idles past
/// `REQUEST_HEAD_TIMEOUT`, it reaches `CONNECTION_LIFETIME`, or the server
/// stops.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    site: Arc<Site>,
    _slot: OwnedSemaphorePermit,
    stopping: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let response = site.respond(request.method(), request.uri().path());
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_HEAD_TIMEOUT)
        .max_buf_size(BUFFER_MAX_BYTES)
        .max_headers(HEADERS_MAX);
    let served = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        ended = served.as_mut() => {
            if let Err(error) = ended {
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
            return;
        }
        () = stopping.cancelled() => {}
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {}
    }
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_WAIT, served).await;
}
