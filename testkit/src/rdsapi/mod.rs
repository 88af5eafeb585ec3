//! A local RDS (and STS) Query-protocol API on 127.0.0.1, for tests.
//!
//! The real AWS SDK reaches it through `--endpoint-url` / `AWS_ENDPOINT_URL_RDS` /
//! `AWS_ENDPOINT_URL_STS`, so the CLI's resolution code runs unchanged against a world the test
//! controls: an [`Inventory`] of proxies, clusters and instances, swappable while running, plus
//! [`Fault`]s (throttling, 5xx, delay) on demand. Every request is recorded with the access key
//! id, region and service from its SigV4 credential scope, so tests can assert which
//! credentials/region the CLI used and how many calls pagination and retries took.
//!
//! Answered actions: `DescribeDBProxies`, `DescribeDBClusters`, `DescribeDBInstances` (with
//! `MaxRecords`/`Marker` pagination and the common `Filters`), `DescribeDBProxyTargets` and STS
//! `GetCallerIdentity`. Every answer carries a `Date` header, movable with
//! [`RdsApi::set_clock_offset`] (clients measure clock skew from it), and
//! [`RdsApi::require_signatures`] turns on AWS's own SigV4 check (wrong secrets get
//! `SignatureDoesNotMatch`).
//! Response and error XML follow the shapes the SDK's generated deserializers expect (checked
//! against aws-sdk-rds 1.159 / aws-sdk-sts 1.124, and by the SDK-driven tests in `tests`).
//!
//! The HTTP/1.1 server is hand-written on tokio rather than pulling in hyper: requests are small
//! form POSTs, and owning the parser lets the tests poke at keep-alive and chunked bodies.
//! It runs on its own thread with its own runtime, so plain synchronous `#[test]`s can use it.
//!
//! One file per job, so each can be reviewed alone:
//! - `inventory`: the data model the tests build (proxies, clusters, instances, faults);
//! - `http`: HTTP/1.1 parsing and writing, the connection loop, the misbehaving faults;
//! - `sigv4`: the `Authorization` credential scope and the optional signature check;
//! - `actions`: the answered actions, with pagination and filters;
//! - `xml`: the XML writer and how each resource and error is written.
//!
//! This file holds the server handle, the state it shares with the connections, and
//! `handle`, which turns one parsed request into its answer (record, authenticate, inject
//! the fault, act) and is the only place `http` meets `actions`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod actions;
mod http;
mod inventory;
mod sigv4;
#[cfg(test)]
mod tests;
mod xml;

pub use inventory::{Cluster, Fault, Instance, Inventory, Proxy};

use actions::answer;
use http::{HttpRequest, HttpResponse, Misbehave, parse_form, unix_now};
use sigv4::{check_signature, parse_authorization};
use xml::{RDS_XMLNS, STS_XMLNS, error_xml};

/// The account every generated ARN lives in.
pub const ACCOUNT: &str = "123456789012";
/// The region every generated ARN and host name lives in.
pub const REGION: &str = "us-east-1";
/// The per-account DNS part of RDS host names in [`REGION`], as in the article.
pub const DNS_SUFFIX: &str = "c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";

/// One request as the server saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `x-amzn-RequestId` the server answered with.
    pub request_id: String,
    /// `Action` parameter (empty if missing).
    pub action: String,
    /// All Query parameters (URL query string and form body), decoded.
    pub params: BTreeMap<String, String>,
    /// From `Authorization: AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request`.
    pub access_key_id: Option<String>,
    pub region: Option<String>,
    pub service: Option<String>,
    /// `X-Amz-Security-Token`, present with temporary (assumed-role/SSO) credentials.
    pub session_token: Option<String>,
    pub user_agent: Option<String>,
    /// HTTP status answered; 0 while the answer is still pending (e.g. under [`Fault::Delay`]).
    pub status: u16,
}

/// A running fake RDS/STS endpoint. Dropping it stops the server.
pub struct RdsApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

// ---------------------------------------------------------------------------------------------
// The handle.

struct State {
    inventory: Inventory,
    /// Added to the real time in each answer's `Date` header, as if AWS's clock differed.
    clock_offset: i64,
    /// When set, requests must carry a valid SigV4 signature by one of these (key id, secret).
    secrets: Option<Vec<(String, String)>>,
    fault: Fault,
    /// `Some(action)` confines `fault` to that action.
    fault_action: Option<String>,
    requests: Vec<Request>,
    next_request: u64,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not wedge the server for the others.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RdsApi {
    /// Binds 127.0.0.1 on a free port and serves `inventory` from a background thread.
    pub fn start(inventory: Inventory) -> anyhow::Result<RdsApi> {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the fake RDS API")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the fake RDS API's runtime")?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let state = Arc::new(Mutex::new(State {
            inventory,
            clock_offset: 0,
            secrets: None,
            fault: Fault::None,
            fault_action: None,
            requests: Vec::new(),
            next_request: 0,
        }));
        let (shutdown, mut shutdown_rx) = oneshot::channel::<()>();
        let server_state = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rdsapi-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            // Fires on send and on the sender being dropped alike.
                            _ = &mut shutdown_rx => break,
                            accepted = listener.accept() => match accepted {
                                Ok((socket, _)) => {
                                    tokio::spawn(http::serve_connection(socket, server_state.clone()));
                                }
                                // e.g. EMFILE: back off instead of spinning, keep serving.
                                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                            },
                        }
                    }
                });
                // Dropping the runtime here cancels the connection tasks still running.
            })
            .context("spawning the fake RDS API's thread")?;
        Ok(RdsApi {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, for `--endpoint-url` / `AWS_ENDPOINT_URL_RDS` / `AWS_ENDPOINT_URL_STS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` into every action from the next request on.
    pub fn set_fault(&self, fault: Fault) {
        let mut st = lock(&self.state);
        st.fault = fault;
        st.fault_action = None;
    }

    /// Injects `fault` into `action` only (e.g. `"DescribeDBProxies"`); other actions answer normally.
    pub fn set_fault_for(&self, action: &str, fault: Fault) {
        let mut st = lock(&self.state);
        st.fault = fault;
        st.fault_action = Some(action.to_string());
    }

    /// The fault still pending (counted faults count down to [`Fault::None`]).
    pub fn fault(&self) -> Fault {
        lock(&self.state).fault.clone()
    }

    /// Replaces what the Describe calls list and who STS says the caller is.
    pub fn set_inventory(&self, inventory: Inventory) {
        lock(&self.state).inventory = inventory;
    }

    pub fn inventory(&self) -> Inventory {
        lock(&self.state).inventory.clone()
    }

    /// Every request so far, oldest first (including ones answered with errors or faults).
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// How many requests named `action` arrived (each retry and each page counts).
    pub fn count(&self, action: &str) -> usize {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.action == action)
            .count()
    }

    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    /// Moves the clock in every answer's `Date` header by `secs` (positive: AWS lives in the
    /// future), which is how clients measure their clock skew.
    pub fn set_clock_offset(&self, secs: i64) {
        lock(&self.state).clock_offset = secs;
    }

    /// From now on, check each request's SigV4 signature as AWS does: an unknown key id gets
    /// `403 InvalidClientTokenId`, a signature made with another secret `403
    /// SignatureDoesNotMatch`. Off by default (then only the credential scope is read).
    pub fn require_signatures(&self, credentials: &[(&str, &str)]) {
        lock(&self.state).secrets = Some(
            credentials
                .iter()
                .map(|(k, s)| (k.to_string(), s.to_string()))
                .collect(),
        );
    }
}

impl Drop for RdsApi {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One request: what every action shares (the parameters, the error answer) and the dispatch.
// It lives here, beside `State`, so that `http` reaches `actions` only through it.

type Params = BTreeMap<String, String>;

struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
}

fn api_error(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

/// What to do with a request before looking at the inventory.
enum Gate {
    Proceed,
    Delay(Duration),
    Fail(ApiError),
    Misbehave(Misbehave),
    Raw(u16, String),
}

impl State {
    /// Applies (and counts down) the pending fault for `action`.
    fn take_fault(&mut self, action: &str) -> Gate {
        if self.fault_action.as_deref().is_some_and(|a| a != action) {
            return Gate::Proceed;
        }
        let throttled = || api_error(400, "Throttling", "Rate exceeded");
        let internal = || {
            api_error(
                500,
                "InternalFailure",
                "The request processing has failed because of an unknown error, exception or failure.",
            )
        };
        match &mut self.fault {
            Fault::None => Gate::Proceed,
            Fault::Delay(d) => Gate::Delay(*d),
            Fault::Hang => Gate::Misbehave(Misbehave::Hang),
            Fault::StallAfterStatus => Gate::Misbehave(Misbehave::StallAfterStatus),
            Fault::EndlessBody => Gate::Misbehave(Misbehave::EndlessBody),
            Fault::Raw { status, body } => Gate::Raw(*status, body.clone()),
            Fault::ServerError => Gate::Fail(internal()),
            Fault::Throttle { times } | Fault::ServerErrorTimes(times) if *times == 0 => {
                self.fault = Fault::None;
                Gate::Proceed
            }
            Fault::Throttle { times } => {
                *times -= 1;
                if *times == 0 {
                    self.fault = Fault::None;
                }
                Gate::Fail(throttled())
            }
            Fault::ServerErrorTimes(times) => {
                *times -= 1;
                if *times == 0 {
                    self.fault = Fault::None;
                }
                Gate::Fail(internal())
            }
        }
    }
}

fn xmlns_for(action: &str) -> &'static str {
    if action == "GetCallerIdentity" {
        STS_XMLNS
    } else {
        RDS_XMLNS
    }
}

async fn handle(state: &Mutex<State>, http: HttpRequest) -> HttpResponse {
    let mut params = Params::new();
    if let Some((_, query)) = http.target.split_once('?') {
        parse_form(query, &mut params);
    }
    if http.method.eq_ignore_ascii_case("POST") {
        parse_form(&String::from_utf8_lossy(&http.body), &mut params);
    }
    let action = params.get("Action").cloned().unwrap_or_default();
    let authorization = http.header("authorization").map(str::to_string);
    let credential = authorization.as_deref().and_then(parse_authorization);

    let (request_id, gate) = {
        let mut st = lock(state);
        st.next_request += 1;
        // UUID-shaped, like AWS's, and unique per server.
        let request_id = format!("00000000-0000-4000-8000-{:012x}", st.next_request);
        st.requests.push(Request {
            request_id: request_id.clone(),
            action: action.clone(),
            params: params.clone(),
            access_key_id: credential.as_ref().map(|c| c.access_key_id.clone()),
            region: credential.as_ref().map(|c| c.region.clone()),
            service: credential.as_ref().map(|c| c.service.clone()),
            session_token: http.header("x-amz-security-token").map(str::to_string),
            user_agent: http.header("user-agent").map(str::to_string),
            status: 0,
        });
        let gate = match (&authorization, &credential) {
            (None, _) => Gate::Fail(api_error(
                403,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            )),
            (Some(_), None) => Gate::Fail(api_error(
                403,
                "IncompleteSignature",
                "Authorization header requires 'Credential' parameter in the form AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request.",
            )),
            (Some(_), Some(_)) => match st
                .secrets
                .as_deref()
                .map(|s| check_signature(&http, s, unix_now() + st.clock_offset))
            {
                Some(Err(e)) => Gate::Fail(e),
                _ => st.take_fault(&action),
            },
        };
        (request_id, gate)
    };

    let result = match gate {
        Gate::Misbehave(misbehave) => {
            return HttpResponse {
                status: 0,
                request_id,
                body: String::new(),
                misbehave: Some(misbehave),
                date: unix_now(),
            };
        }
        Gate::Raw(status, body) => {
            return HttpResponse {
                status,
                request_id,
                body,
                misbehave: None,
                date: unix_now(),
            };
        }
        Gate::Fail(e) => Err(e),
        Gate::Delay(d) => {
            tokio::time::sleep(d).await;
            answer(&lock(state).inventory, &action, &params, &request_id)
        }
        Gate::Proceed => answer(&lock(state).inventory, &action, &params, &request_id),
    };
    let (status, body) = match result {
        Ok(body) => (200, body),
        Err(e) => (
            e.status,
            error_xml(
                xmlns_for(&action),
                e.status,
                e.code,
                &e.message,
                &request_id,
            ),
        ),
    };
    if let Some(r) = lock(state)
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.request_id == request_id)
    {
        r.status = status;
    }
    HttpResponse {
        status,
        request_id,
        body,
        misbehave: None,
        date: unix_now() + lock(state).clock_offset,
    }
}
