//! [`FaultProxy`]: the HTTP/1.1 server in front of the emulator. All decisions
//! come from [`crate::fault`], all body surgery from [`crate::wire`]; this module
//! only moves bytes and counts.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::allowance::{Charge, ShardBuckets};
use crate::fault::{
    Before, Counters, FaultConfig, FaultStats, InvalidFaultConfig, add, choose_failures, plan,
    request_rng,
};
use crate::wire::{self, InjectedError, PUT_RECORDS_TARGET, PutRecordsRequest, Service};

/// A fault-injecting HTTP/1.1 reverse proxy on 127.0.0.1 in front of an AWS
/// emulator (kinesalite, moto).
///
/// Point an SDK client at [`url`](FaultProxy::url). Requests other than PutRecords
/// pass through untouched (unless [`FaultConfig::fault_all_operations`]); PutRecords
/// get the faults of the current [`FaultConfig`]. The proxy rewrites request bodies
/// without re-signing them, which emulators accept (they do not check SigV4).
///
/// In front of DynamoDB (`X-Amz-Target: DynamoDB_20120810.*`, say through
/// `AWS_ENDPOINT_URL_DYNAMODB`), set `fault_all_operations`: every request then
/// gets the whole-request faults (errors, dropped connections), and injected
/// errors are shaped as DynamoDB sends them (awsJson1.0, namespaced `__type`,
/// `InternalServerError` for a 5xx). Only PutRecords ever gets record faults.
///
/// It stops on drop or [`shutdown`](FaultProxy::shutdown); connections in progress
/// are cut.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    /// Scheme and authority of the upstream; the request's path and query follow.
    upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Debug)]
struct State {
    config: Arc<FaultConfig>,
    /// Number of the next request under `config` (its RNG stream).
    next_request: u64,
    /// The buckets of `config.shard_allowance`.
    allowance: Option<ShardBuckets>,
}

impl State {
    fn new(config: FaultConfig) -> State {
        State {
            allowance: config.shard_allowance.map(ShardBuckets::new),
            config: Arc::new(config),
            next_request: 0,
        }
    }
}

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by FaultProxy")]
struct DropConnection;

type ProxyResult = Result<Response<Full<Bytes>>, DropConnection>;

/// The upstream's answer, read whole.
struct Upstream {
    head: http::response::Parts,
    body: Bytes,
}

impl Upstream {
    fn into_response(self) -> Response<Full<Bytes>> {
        Response::from_parts(self.head, Full::new(self.body))
    }
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream`, an
    /// `http://host:port` URL (any path is ignored).
    ///
    /// Must be called within a Tokio runtime, which runs the proxy. Fails with
    /// [`io::ErrorKind::InvalidInput`] on a bad URL or config, or when called
    /// outside a runtime.
    pub fn start(upstream: &str, faults: FaultConfig) -> io::Result<FaultProxy> {
        FaultProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, faults)
    }

    /// The same on `addr`: for a client whose endpoint was fixed before the proxy
    /// started (a function started by `cargo lambda watch` with
    /// `AWS_ENDPOINT_URL_KINESIS` naming a port chosen for the proxy).
    ///
    /// Fails as [`start`](FaultProxy::start) does, and when `addr` cannot be bound.
    pub fn start_on(
        addr: SocketAddr,
        upstream: &str,
        faults: FaultConfig,
    ) -> io::Result<FaultProxy> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        faults.validate().map_err(|e| invalid(e.to_string()))?;
        let upstream = upstream_base(upstream).map_err(invalid)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| invalid(format!("FaultProxy::start needs a Tokio runtime: {e}")))?;
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            state: Mutex::new(State::new(faults)),
            counters: Counters::default(),
        });
        let task = runtime.spawn(serve(listener, Arc::clone(&shared)));
        tracing::debug!(%addr, upstream = %shared.upstream, "fault proxy started");
        Ok(FaultProxy { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`, for an SDK client's endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the proxy has seen and injected so far.
    pub fn stats(&self) -> FaultStats {
        self.shared.counters.snapshot()
    }

    /// Replaces the faults for the requests that arrive from now on, restarts
    /// the request numbering of the seeded decisions and refills the shard
    /// allowance's buckets. An invalid config is rejected and the current one kept.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), InvalidFaultConfig> {
        faults.validate()?;
        let mut state = self.shared.lock_state();
        *state = State::new(faults);
        Ok(())
    }

    /// Stops the proxy and waits until its listener and connections are closed.
    pub async fn shutdown(self) {
        let mut this = self;
        this.task.abort();
        // Cancelled is the expected outcome; the task never ends otherwise.
        let _ = (&mut this.task).await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn upstream_base(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("bad upstream URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!(
            "upstream URL {url:?} must be http://host:port (no TLS)"
        ));
    }
    Ok(uri)
}

impl Shared {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is replaced whole, and the buckets change by whole takes that
        // cannot panic: a panic elsewhere cannot leave it half-written, so a
        // poisoned lock is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Charges a PutRecords' records to the current allowance now (see
    /// [`ShardBuckets::charge`]); how many it throttled. Under the current one,
    /// not the request's: a `set_faults` in between applies at once.
    fn charge_allowance(&self, charges: &[Option<Charge>], failed: &mut [bool]) -> u64 {
        let mut state = self.lock_state();
        // Read under the lock, so that the buckets see the instants in order.
        let now = tokio::time::Instant::now();
        match &mut state.allowance {
            Some(buckets) => buckets.charge(charges, failed, now),
            None => 0,
        }
    }

    /// The current config and this request's number under it.
    fn next_request(&self) -> (Arc<FaultConfig>, u64) {
        let mut state = self.lock_state();
        let index = state.next_request;
        state.next_request += 1;
        (Arc::clone(&state.config), index)
    }
}

/// Accepts connections until the task is aborted; dropping the `JoinSet` then
/// aborts the connections too.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "fault proxy accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Small request/response exchanges; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "fault proxy connection ended");
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> ProxyResult {
    let counters = &shared.counters;
    add(&counters.requests, 1);
    let target = req.headers().get("x-amz-target").map(HeaderValue::as_bytes);
    let service = Service::of_target(target);
    let is_put_records = target.is_some_and(|t| t == PUT_RECORDS_TARGET.as_bytes());
    if is_put_records {
        add(&counters.put_records_requests, 1);
    }
    let (config, index) = shared.next_request();
    let mut rng = request_rng(config.seed, index);
    let plan = plan(&config, &mut rng, is_put_records);

    let (parts, body) = req.into_parts();
    // Read the body even when the answer does not need it: hyper closes a
    // connection whose request was not consumed, and that churn is not a fault
    // anybody asked for.
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();

    match plan.before {
        Before::Forward => {}
        Before::DropConnection => {
            add(&counters.dropped_before, 1);
            return Err(DropConnection);
        }
        Before::Answer(error) => {
            counters.injected(error);
            return Ok(error_response(error, service));
        }
    }

    if !is_put_records {
        let answer = forward(&shared, &parts, body).await;
        return finish(&shared, answer, plan.drop_after);
    }

    let request = match PutRecordsRequest::parse(&body) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "PutRecords body is not awsJson1.1; forwarded without record faults");
            add(&counters.unparsed_put_records, 1);
            let answer = forward(&shared, &parts, body).await;
            return finish(&shared, answer, plan.drop_after);
        }
    };
    let mut failed = choose_failures(&mut rng, config.record_failure_rate, request.len());
    add(
        &counters.failed_records,
        failed.iter().filter(|&&f| f).count() as u64,
    );
    if config.shard_allowance.is_some() {
        // Hashed outside the lock; only the takes are under it.
        let charges = request.charges();
        let throttled = shared.charge_allowance(&charges, &mut failed);
        add(&counters.allowance_throttled_records, throttled);
    }
    let failed_count = failed.iter().filter(|&&f| f).count();
    if failed_count == request.len() && failed_count > 0 {
        return Ok(json_response(
            StatusCode::OK,
            wire::all_failed(failed_count),
            service,
        ));
    }
    let forwarded_body = if failed_count == 0 {
        body
    } else {
        Bytes::from(request.without(&failed))
    };
    add(
        &counters.forwarded_records,
        (request.len() - failed_count) as u64,
    );
    let answer = match forward(&shared, &parts, forwarded_body).await {
        Ok(answer) if answer.head.status == StatusCode::OK => {
            match wire::merge(&answer.body, &failed) {
                Ok(merged) => {
                    add(&counters.written_records, merged.written);
                    if failed_count == 0 {
                        Ok(answer)
                    } else {
                        Ok(Upstream {
                            body: Bytes::from(merged.body),
                            ..answer
                        })
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot merge the upstream's PutRecords answer");
                    add(&counters.upstream_errors, 1);
                    Err(error_response(InjectedError::InternalFailure, service))
                }
            }
        }
        // A whole-request error from the upstream reaches the client as it is.
        other => other,
    };
    finish(&shared, answer, plan.drop_after)
}

/// Answers, or drops the connection after the upstream did its work. `Err` is an
/// answer made here because the upstream call failed; it is never dropped.
fn finish(
    shared: &Shared,
    answer: Result<Upstream, Response<Full<Bytes>>>,
    drop_after: bool,
) -> ProxyResult {
    match answer {
        Ok(_) if drop_after => {
            add(&shared.counters.dropped_after, 1);
            Err(DropConnection)
        }
        Ok(upstream) => Ok(upstream.into_response()),
        Err(response) => Ok(response),
    }
}

/// Headers that describe one hop, not the message (RFC 9110 section 7.6.1), and
/// those the body framing recomputes.
fn is_hop_header(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::HOST,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !is_hop_header(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Sends the request upstream. `Ok` is the upstream's answer (any status), `Err`
/// the 502 the client gets when the upstream could not be reached.
async fn forward(
    shared: &Shared,
    parts: &Parts,
    body: Bytes,
) -> Result<Upstream, Response<Full<Bytes>>> {
    let counters = &shared.counters;
    let bad_gateway = |error: String| {
        tracing::warn!(upstream = %shared.upstream, %error, "fault proxy upstream call failed");
        add(&counters.upstream_errors, 1);
        let mut response = Response::new(Full::new(Bytes::from(format!(
            "FaultProxy: upstream {} failed: {error}\n",
            shared.upstream
        ))));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    };
    let mut uri = shared.upstream.clone().into_parts();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    let uri = Uri::from_parts(uri).map_err(|e| bad_gateway(e.to_string()))?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    copy_end_to_end(&parts.headers, request.headers_mut());

    add(&counters.forwarded_requests, 1);
    let response = shared
        .client
        .request(request)
        .await
        .map_err(|e| bad_gateway(e.to_string()))?;
    let (mut head, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| bad_gateway(e.to_string()))?
        .to_bytes();
    let headers = std::mem::take(&mut head.headers);
    copy_end_to_end(&headers, &mut head.headers);
    Ok(Upstream { head, body })
}

fn json_response(status: StatusCode, body: Vec<u8>, service: Service) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(service.content_type()),
    );
    response
}

/// An awsJson error answer, shaped as the request's service sends it.
fn error_response(error: InjectedError, service: Service) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json_response(status, error.body(service), service);
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static(error.code(service)),
    );
    response
}
