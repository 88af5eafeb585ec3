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
//! against aws-sdk-rds 1.159 / aws-sdk-sts 1.124, and by the SDK-driven tests below).
//!
//! The HTTP/1.1 server is hand-written on tokio rather than pulling in hyper: requests are small
//! form POSTs, and owning the parser lets the tests poke at keep-alive and chunked bodies.
//! It runs on its own thread with its own runtime, so plain synchronous `#[test]`s can use it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The account every generated ARN lives in.
pub const ACCOUNT: &str = "123456789012";
/// The region every generated ARN and host name lives in.
pub const REGION: &str = "us-east-1";
/// The per-account DNS part of RDS host names in [`REGION`], as in the article.
pub const DNS_SUFFIX: &str = "c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";

const RDS_XMLNS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
// Route 53 zone RDS uses for us-east-1 endpoints; the SDK only passes it through.
const HOSTED_ZONE_ID: &str = "Z2R2ITUGPM61AM";
// A fixed instant keeps responses byte-stable between runs.
const CREATED: &str = "2024-05-01T12:00:00.000Z";
// AWS caps MaxRecords to 20..=100 and defaults to 100 for all three Describe calls.
const MAX_RECORDS_DEFAULT: usize = 100;
const MAX_RECORDS_RANGE: std::ops::RangeInclusive<i64> = 20..=100;
// Bounds on what one request may make the server buffer; SDK requests are a few hundred bytes.
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: usize = 1024 * 1024;

/// An RDS Proxy, as `DescribeDBProxies` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxy {
    pub name: String,
    /// e.g. `arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdef0`
    pub arn: String,
    /// Host name; left empty, the `Endpoint` element is omitted (as while a proxy is creating).
    pub endpoint: String,
    /// `POSTGRESQL`, `MYSQL`, `SQLSERVER`
    pub engine_family: String,
    /// `available`, `creating`, …
    pub status: String,
    pub require_tls: bool,
    /// `REQUIRED` | `ENABLED` | `DISABLED`, reported as `IAMAuth` of the single `Auth` member;
    /// left empty, the proxy has no `Auth` list at all.
    pub iam_auth: String,
    /// `IAM_AUTH` for end-to-end IAM proxies; `None` omits the element.
    pub default_auth_scheme: Option<String>,
    /// Identifiers of the clusters or instances in the inventory that the proxy's default
    /// target group points at, as `DescribeDBProxyTargets` reports them (a cluster as a
    /// `TRACKED_CLUSTER` target plus one `RDS_INSTANCE` per member).
    pub targets: Vec<String>,
}

/// An Aurora DB cluster, as `DescribeDBClusters` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster identifier; AWS stores them lower-case, and [`Cluster::new`] does too.
    pub id: String,
    pub arn: String,
    /// Writer endpoint host name (empty → element omitted).
    pub endpoint: String,
    /// Reader endpoint host name (empty → element omitted).
    pub reader_endpoint: String,
    pub port: u16,
    /// e.g. `aurora-postgresql`
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    /// `IAMDatabaseAuthenticationEnabled`
    pub iam_enabled: bool,
    /// `DbClusterResourceId`, e.g. `cluster-ABCDEFGHIJKLMNOPQRSTUVWX12` (goes in `rds-db:connect` ARNs).
    pub resource_id: String,
}

/// A DB instance, as `DescribeDBInstances` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// Instance identifier; AWS stores them lower-case, and [`Instance::new`] does too.
    pub id: String,
    pub arn: String,
    /// `Endpoint.Address` (empty → no `Endpoint` element, as while an instance is creating).
    pub address: String,
    pub port: u16,
    /// e.g. `postgres`, `aurora-postgresql`
    pub engine: String,
    pub engine_version: String,
    /// `DBInstanceStatus`
    pub status: String,
    /// `IAMDatabaseAuthenticationEnabled`
    pub iam_enabled: bool,
    /// `DbiResourceId`, e.g. `db-ABCDEFGHIJKLMNOPQRSTUVWX12`
    pub resource_id: String,
    /// `DBClusterIdentifier` for Aurora members. The first member of a cluster in inventory
    /// order is reported as its writer in `DBClusterMembers`.
    pub cluster_id: Option<String>,
}

/// Everything the fake API knows: what the Describe calls list and who `GetCallerIdentity` says
/// the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    pub proxies: Vec<Proxy>,
    pub clusters: Vec<Cluster>,
    pub instances: Vec<Instance>,
    /// `Account` of `GetCallerIdentity`
    pub account: String,
    /// `UserId` of `GetCallerIdentity`
    pub user_id: String,
    /// `Arn` of `GetCallerIdentity`
    pub caller_arn: String,
}

/// A failure to inject. Set with [`RdsApi::set_fault`] (every action) or
/// [`RdsApi::set_fault_for`] (one action); counted variants revert to `None` once spent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Answer `400 Throttling` "Rate exceeded" this many times, then normally.
    Throttle { times: u32 },
    /// Answer every request with `500 InternalFailure`.
    ServerError,
    /// Answer `500 InternalFailure` this many times, then normally.
    ServerErrorTimes(u32),
    /// Wait this long before answering each request (normally), to exercise client timeouts.
    Delay(Duration),
    /// Read the request, then never answer (the connection stays open).
    Hang,
    /// Send the status line `HTTP/1.1 200 OK`, then nothing more.
    StallAfterStatus,
    /// Answer 200 with a chunked body that never ends (until the client hangs up).
    EndlessBody,
    /// Answer with this status and body as they are: not an AWS error document.
    Raw { status: u16, body: String },
}

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
// The data model's constructors.

/// Deterministic pseudo-random hex derived from `seed`, so generated ids are stable across runs.
fn stable_hex(seed: &str, len: usize) -> String {
    let mut out = String::new();
    let mut counter = 0u32;
    while out.len() < len {
        let digest = Sha256::digest(format!("{seed}/{counter}").as_bytes());
        out.push_str(&hex::encode(digest));
        counter += 1;
    }
    out.truncate(len);
    out
}

impl Proxy {
    /// A PostgreSQL proxy in the article's account with IAM required, TLS required and
    /// `DefaultAuthScheme` `IAM_AUTH`; fields are public to adjust.
    pub fn new(name: &str) -> Proxy {
        Proxy {
            name: name.to_string(),
            arn: format!(
                "arn:aws:rds:{REGION}:{ACCOUNT}:db-proxy:prx-{}",
                stable_hex(name, 17)
            ),
            // Proxy host names are the lower-cased name, whatever the name's case.
            endpoint: format!("{}.proxy-{DNS_SUFFIX}", name.to_ascii_lowercase()),
            engine_family: "POSTGRESQL".to_string(),
            status: "available".to_string(),
            require_tls: true,
            iam_auth: "REQUIRED".to_string(),
            default_auth_scheme: Some("IAM_AUTH".to_string()),
            targets: Vec::new(),
        }
    }
}

impl Proxy {
    /// A MySQL proxy (engine family `MYSQL`), otherwise as [`Proxy::new`].
    pub fn mysql(name: &str) -> Proxy {
        Proxy {
            engine_family: "MYSQL".to_string(),
            ..Proxy::new(name)
        }
    }
}

impl Cluster {
    /// An available Aurora MySQL cluster on 3306 with IAM auth on.
    pub fn aurora_mysql(id: &str) -> Cluster {
        Cluster {
            port: 3306,
            engine: "aurora-mysql".to_string(),
            engine_version: "8.0.mysql_aurora.3.08.0".to_string(),
            ..Cluster::new(id)
        }
    }

    /// An available Aurora PostgreSQL cluster on 5432 with IAM auth on.
    pub fn new(id: &str) -> Cluster {
        let id = id.to_ascii_lowercase();
        Cluster {
            arn: format!("arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{id}"),
            endpoint: format!("{id}.cluster-{DNS_SUFFIX}"),
            reader_endpoint: format!("{id}.cluster-ro-{DNS_SUFFIX}"),
            port: 5432,
            engine: "aurora-postgresql".to_string(),
            engine_version: "16.4".to_string(),
            status: "available".to_string(),
            iam_enabled: true,
            resource_id: format!("cluster-{}", stable_hex(&id, 26).to_ascii_uppercase()),
            id,
        }
    }
}

impl Instance {
    /// An available stand-alone RDS for PostgreSQL instance on 5432 with IAM auth on.
    pub fn new(id: &str) -> Instance {
        let id = id.to_ascii_lowercase();
        Instance {
            arn: format!("arn:aws:rds:{REGION}:{ACCOUNT}:db:{id}"),
            address: format!("{id}.{DNS_SUFFIX}"),
            port: 5432,
            engine: "postgres".to_string(),
            engine_version: "16.4".to_string(),
            status: "available".to_string(),
            iam_enabled: true,
            resource_id: format!("db-{}", stable_hex(&id, 26).to_ascii_uppercase()),
            cluster_id: None,
            id,
        }
    }

    /// An available RDS for MariaDB instance on 3306 with IAM auth on.
    pub fn mariadb(id: &str) -> Instance {
        Instance {
            port: 3306,
            engine: "mariadb".to_string(),
            engine_version: "10.11.9".to_string(),
            ..Instance::new(id)
        }
    }

    /// An available RDS for MySQL instance on 3306 with IAM auth on.
    pub fn mysql(id: &str) -> Instance {
        Instance {
            port: 3306,
            engine: "mysql".to_string(),
            engine_version: "8.0.39".to_string(),
            ..Instance::new(id)
        }
    }

    /// A member instance of `cluster`, sharing its engine, version, port and IAM setting.
    pub fn in_cluster(id: &str, cluster: &Cluster) -> Instance {
        Instance {
            port: cluster.port,
            engine: cluster.engine.clone(),
            engine_version: cluster.engine_version.clone(),
            iam_enabled: cluster.iam_enabled,
            cluster_id: Some(cluster.id.clone()),
            ..Instance::new(id)
        }
    }
}

impl Default for Inventory {
    /// Nothing listed, but a caller identity (the article's on-call engineer) for STS.
    fn default() -> Inventory {
        Inventory {
            proxies: Vec::new(),
            clusters: Vec::new(),
            instances: Vec::new(),
            account: ACCOUNT.to_string(),
            user_id: "AROA3XFRBF535PLBIFPI4:jane".to_string(),
            caller_arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/OnCall/jane"),
        }
    }
}

impl Inventory {
    /// The article's world: proxy `PostgreSqlProxy` (IAM required, TLS required, end-to-end
    /// IAM), Aurora cluster `databasecluster` with its writer `databasecluster-writer` (IAM on),
    /// and a stand-alone instance `legacy-reporting` with IAM auth off.
    pub fn article() -> Inventory {
        let proxy = Proxy {
            arn: format!("arn:aws:rds:{REGION}:{ACCOUNT}:db-proxy:prx-0123456789abcdef0"),
            targets: vec!["databasecluster".to_string()],
            ..Proxy::new("PostgreSqlProxy")
        };
        let cluster = Cluster {
            resource_id: "cluster-ABCDEFGHIJKLMNOPQRSTUVWX12".to_string(),
            ..Cluster::new("databasecluster")
        };
        let writer = Instance {
            resource_id: "db-ABCDEFGHIJKLMNOPQRSTUVWX34".to_string(),
            ..Instance::in_cluster("databasecluster-writer", &cluster)
        };
        let legacy = Instance {
            iam_enabled: false,
            engine_version: "13.15".to_string(),
            resource_id: "db-ZYXWVUTSRQPONMLKJIHGFEDC56".to_string(),
            ..Instance::new("legacy-reporting")
        };
        Inventory {
            proxies: vec![proxy],
            clusters: vec![cluster],
            instances: vec![writer, legacy],
            ..Inventory::default()
        }
    }

    /// The MySQL half beside what is there: proxy `MySqlProxy` (engine family MYSQL) in front
    /// of Aurora MySQL cluster `ordersmysql` (writer `ordersmysql-writer`), and a stand-alone
    /// MariaDB instance `mariadb-reporting`, all with IAM on.
    pub fn with_mysql(mut self) -> Inventory {
        let cluster = Cluster::aurora_mysql("ordersmysql");
        let writer = Instance::in_cluster("ordersmysql-writer", &cluster);
        self.proxies.push(Proxy {
            targets: vec![cluster.id.clone()],
            ..Proxy::mysql("MySqlProxy")
        });
        self.clusters.push(cluster);
        self.instances.push(writer);
        self.instances.push(Instance::mariadb("mariadb-reporting"));
        self
    }

    /// Adds `n` proxies, `n` clusters and `n` instances named `orders-proxy-000`…,
    /// `orders-cluster-000`…, `orders-db-000`… after the existing ones (for pagination tests).
    pub fn with_extra(self, n: usize) -> Inventory {
        self.with_extra_proxies(n)
            .with_extra_clusters(n)
            .with_extra_instances(n)
    }

    /// Adds `n` proxies `orders-proxy-000`, `orders-proxy-001`, ….
    pub fn with_extra_proxies(mut self, n: usize) -> Inventory {
        self.proxies
            .extend((0..n).map(|i| Proxy::new(&format!("orders-proxy-{i:03}"))));
        self
    }

    /// Adds `n` clusters `orders-cluster-000`, ….
    pub fn with_extra_clusters(mut self, n: usize) -> Inventory {
        self.clusters
            .extend((0..n).map(|i| Cluster::new(&format!("orders-cluster-{i:03}"))));
        self
    }

    /// Adds `n` stand-alone instances `orders-db-000`, ….
    pub fn with_extra_instances(mut self, n: usize) -> Inventory {
        self.instances
            .extend((0..n).map(|i| Instance::new(&format!("orders-db-{i:03}"))));
        self
    }
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
                                    tokio::spawn(serve_connection(socket, server_state.clone()));
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
// HTTP/1.1.

struct HttpRequest {
    method: String,
    target: String,
    version: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        }
    }
}

struct HttpResponse {
    status: u16,
    request_id: String,
    body: String,
    /// Set by the misbehaving faults: what to send instead of this answer.
    misbehave: Option<Misbehave>,
    /// Unix seconds for the `Date` header.
    date: i64,
}

#[derive(Clone, Copy)]
enum Misbehave {
    Hang,
    StallAfterStatus,
    EndlessBody,
}

impl Misbehave {
    /// Act it out on `writer`; returns only when the client is gone.
    async fn act(self, writer: &mut (impl AsyncWrite + Unpin)) {
        match self {
            Misbehave::Hang => {}
            Misbehave::StallAfterStatus => {
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\n").await;
                let _ = writer.flush().await;
            }
            Misbehave::EndlessBody => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
                if writer.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while writer.write_all(chunk.as_bytes()).await.is_ok() {}
                return;
            }
        }
        // Hold the connection until the test ends; the server's runtime drops it.
        std::future::pending::<()>().await;
    }
}

impl HttpResponse {
    fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "Unknown",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nx-amzn-RequestId: {}\r\nDate: {}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n",
            self.status,
            self.request_id,
            http_date(self.date),
            self.body.len()
        );
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

async fn serve_connection(socket: TcpStream, state: Arc<Mutex<State>>) {
    let _ = socket.set_nodelay(true);
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    loop {
        let request = match read_request(&mut reader, &mut writer).await {
            Ok(Some(request)) => request,
            // The client closed between requests: the normal end of a keep-alive connection.
            Ok(None) => return,
            Err(e) => {
                let response = HttpResponse {
                    status: 400,
                    request_id: "malformed-request".to_string(),
                    body: error_xml(RDS_XMLNS, 400, "MalformedRequest", &e.to_string(), ""),
                    misbehave: None,
                    date: unix_now() + lock(&state).clock_offset,
                };
                let _ = writer.write_all(&response.to_bytes(false)).await;
                return;
            }
        };
        let keep_alive = request.keep_alive();
        let response = handle(&state, request).await;
        if let Some(misbehave) = response.misbehave {
            misbehave.act(&mut writer).await;
            return;
        }
        if writer
            .write_all(&response.to_bytes(keep_alive))
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one line (with its terminator) of at most [`MAX_LINE`] bytes; "" means EOF.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<String> {
    let mut line = String::new();
    (&mut *reader).take(MAX_LINE).read_line(&mut line).await?;
    if !line.is_empty() && !line.ends_with('\n') && line.len() as u64 >= MAX_LINE {
        return Err(bad("line too long"));
    }
    Ok(line)
}

async fn read_request<R, W>(reader: &mut R, writer: &mut W) -> io::Result<Option<HttpRequest>>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // RFC 9112 §2.2: ignore empty lines before a request line.
    let request_line = loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break line;
        }
    };
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("bad request line {request_line:?}")));
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            return Err(bad("connection closed inside the headers"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("bad header line {line:?}")));
        };
        if headers.len() == MAX_HEADERS {
            return Err(bad("too many headers"));
        }
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut request = HttpRequest {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader).await?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {length:?}")))?;
        if length > MAX_BODY {
            return Err(bad("body too large"));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        request.body = body;
    }
    Ok(Some(request))
}

async fn read_chunked<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?;
        let size = line.trim().split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line that ends the message.
            loop {
                let trailer = read_line(reader).await?;
                if trailer.is_empty() {
                    return Err(bad("connection closed inside the trailers"));
                }
                if trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).await?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Query protocol.

type Params = BTreeMap<String, String>;

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, then %XX).
fn parse_form(input: &str, into: &mut Params) {
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        into.insert(decode(name), decode(value));
    }
}

struct Credential {
    access_key_id: String,
    region: String,
    service: String,
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20240501/us-east-1/rds/aws4_request, SignedHeaders=…, Signature=…`
fn parse_authorization(value: &str) -> Option<Credential> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    let mut scope = credential.split('/');
    let (Some(key), Some(_date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return None;
    };
    if key.is_empty() || region.is_empty() || service.is_empty() {
        return None;
    }
    Some(Credential {
        access_key_id: key.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

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

fn invalid_parameter(message: impl Into<String>) -> ApiError {
    api_error(400, "InvalidParameterValue", message)
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 9110's IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// SigV4 header signing, checked as AWS does (only when [`RdsApi::require_signatures`] is on).
fn check_signature(
    http: &HttpRequest,
    secrets: &[(String, String)],
    now: i64,
) -> Result<(), ApiError> {
    use hmac::{Hmac, KeyInit, Mac};
    let mismatch = || {
        api_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
    };
    let authorization = http.header("authorization").unwrap_or_default();
    let field = |name: &str| {
        authorization
            .strip_prefix("AWS4-HMAC-SHA256")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix(name))
            .unwrap_or_default()
            .to_string()
    };
    let (credential, signed_headers, signature) = (
        field("Credential="),
        field("SignedHeaders="),
        field("Signature="),
    );
    let (key_id, scope) = credential.split_once('/').ok_or_else(mismatch)?;
    let Some((_, secret)) = secrets.iter().find(|(k, _)| k == key_id) else {
        return Err(api_error(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    };
    let amz_date = http.header("x-amz-date").ok_or_else(mismatch)?;
    // AWS's own words for a request signed more than 5 minutes off its clock.
    let signed_at = amz_date_secs(amz_date).ok_or_else(mismatch)?;
    if (signed_at - now).abs() > 300 {
        let (verb, relation) = if signed_at < now {
            ("Signature expired", "is now earlier than")
        } else {
            ("Signature not yet current", "is still later than")
        };
        let bound = if signed_at < now {
            now - 300
        } else {
            now + 300
        };
        return Err(api_error(
            403,
            "SignatureDoesNotMatch",
            format!(
                "{verb}: {amz_date} {relation} {} ({} {} 5 min.)",
                amz_date_of(bound),
                amz_date_of(now),
                if signed_at < now { "-" } else { "+" }
            ),
        ));
    }
    let (path, query) = http.target.split_once('?').unwrap_or((&http.target, ""));
    let mut query_pairs: Vec<(String, String)> = Vec::new();
    let mut decoded = Params::new();
    parse_form(query, &mut decoded);
    for (k, v) in decoded {
        query_pairs.push((sigv4_encode(&k), sigv4_encode(&v)));
    }
    query_pairs.sort();
    let canonical_query = query_pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = http
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = match http.header("x-amz-content-sha256") {
        Some(hash) => hash.to_string(),
        None => hex::encode(Sha256::digest(&http.body)),
    };
    let canonical = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        http.method,
        if path.is_empty() { "/" } else { path },
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `20240501T120000Z` as unix seconds.
fn amz_date_secs(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| value.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(4..6)?, num(6..8)?);
    Some(days * 86_400 + num(9..11)? * 3600 + num(11..13)? * 60 + num(13..15)?)
}

/// Unix seconds as `20240501T120000Z`.
fn amz_date_of(unix: i64) -> String {
    // Reuse the HTTP date's civil conversion: "Sun, 06 Nov 1994 08:49:37 GMT".
    let http = http_date(unix);
    let parts: Vec<&str> = http.split([' ', ':']).collect();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[2]).unwrap_or(0) + 1;
    format!(
        "{}{month:02}{}T{}{}{}Z",
        parts[3], parts[1], parts[4], parts[5], parts[6]
    )
}

/// RFC 3986 unreserved characters stay, everything else `%XX`.
fn sigv4_encode(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
}

fn answer(
    inv: &Inventory,
    action: &str,
    params: &Params,
    request_id: &str,
) -> Result<String, ApiError> {
    match action {
        "DescribeDBProxies" => describe_db_proxies(inv, params, request_id),
        "DescribeDBClusters" => describe_db_clusters(inv, params, request_id),
        "DescribeDBInstances" => describe_db_instances(inv, params, request_id),
        "DescribeDBProxyTargets" => describe_db_proxy_targets(inv, params, request_id),
        "GetCallerIdentity" => Ok(get_caller_identity(inv, request_id)),
        "" => Err(api_error(
            400,
            "MissingAction",
            "The request must contain the parameter Action.",
        )),
        other => Err(api_error(
            400,
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

/// One page of `items` per `MaxRecords`/`Marker`, and the marker of the next page if any.
fn paginate<T>(items: Vec<T>, params: &Params) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match params.get("MaxRecords") {
        None => MAX_RECORDS_DEFAULT,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if MAX_RECORDS_RANGE.contains(&n) => n as usize,
            _ => {
                return Err(invalid_parameter(format!(
                    "Invalid value {v} for MaxRecords. Must be between 20 and 100"
                )));
            }
        },
    };
    let start = match params.get("Marker").map(String::as_str) {
        None | Some("") => 0,
        Some(marker) => decode_marker(marker)
            .filter(|&offset| offset <= items.len())
            .ok_or_else(|| invalid_parameter(format!("Invalid marker: {marker}")))?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| encode_marker(end));
    let page = items.into_iter().skip(start).take(end - start).collect();
    Ok((page, next))
}

// Opaque to clients, as AWS's are; hex keeps it free of characters needing escapes.
fn encode_marker(offset: usize) -> String {
    hex::encode(format!("rdsapi-offset:{offset}"))
}

fn decode_marker(marker: &str) -> Option<usize> {
    let raw = String::from_utf8(hex::decode(marker).ok()?).ok()?;
    raw.strip_prefix("rdsapi-offset:")?.parse().ok()
}

/// `Filters.member.N.Name` / `Filters.member.N.Values.member.M`, in N order.
fn parse_filters(params: &Params) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let mut filters: BTreeMap<u32, (String, BTreeMap<u32, String>)> = BTreeMap::new();
    for (key, value) in params {
        let Some(rest) = key.strip_prefix("Filters.member.") else {
            continue;
        };
        let (n, field) = rest.split_once('.').unwrap_or((rest, ""));
        let n: u32 = n
            .parse()
            .map_err(|_| invalid_parameter(format!("Invalid parameter {key}")))?;
        let entry = filters.entry(n).or_default();
        if field == "Name" {
            entry.0 = value.clone();
        } else if let Some(m) = field.strip_prefix("Values.member.") {
            let m: u32 = m
                .parse()
                .map_err(|_| invalid_parameter(format!("Invalid parameter {key}")))?;
            entry.1.insert(m, value.clone());
        }
    }
    filters
        .into_values()
        .map(|(name, values)| {
            if name.is_empty() {
                Err(invalid_parameter("Filter name must not be empty"))
            } else {
                Ok((name, values.into_values().collect()))
            }
        })
        .collect()
}

/// Keeps the items every filter accepts; `field(item, filter name)` gives the item's values for a
/// filter (None: the filter is unknown to this action).
fn apply_filters<'a, T: Default>(
    items: Vec<&'a T>,
    params: &Params,
    field: impl Fn(&T, &str) -> Option<Vec<String>>,
) -> Result<Vec<&'a T>, ApiError> {
    let filters = parse_filters(params)?;
    for (name, _) in &filters {
        if field(&T::default(), name).is_none() {
            return Err(invalid_parameter(format!(
                "Unrecognized filter name: {name}"
            )));
        }
    }
    Ok(items
        .into_iter()
        .filter(|item| {
            filters.iter().all(|(name, wanted)| {
                let have = field(item, name).unwrap_or_default();
                wanted.iter().any(|w| have.iter().any(|h| h == w))
            })
        })
        .collect())
}

fn get_caller_identity(inv: &Inventory, request_id: &str) -> String {
    let mut x = Xml::default();
    x.open_ns("GetCallerIdentityResponse", STS_XMLNS);
    x.open("GetCallerIdentityResult");
    x.leaf("Arn", &inv.caller_arn);
    x.leaf("UserId", &inv.user_id);
    x.leaf("Account", &inv.account);
    x.close("GetCallerIdentityResult");
    x.response_metadata(request_id);
    x.close("GetCallerIdentityResponse");
    x.0
}

fn describe_db_proxies(
    inv: &Inventory,
    params: &Params,
    request_id: &str,
) -> Result<String, ApiError> {
    let selected: Vec<&Proxy> = match params.get("DBProxyName") {
        // Proxy names are matched exactly, case and all, as AWS does.
        Some(name) => match inv.proxies.iter().find(|p| &p.name == name) {
            Some(p) => vec![p],
            None => {
                return Err(api_error(
                    404,
                    "DBProxyNotFoundFault",
                    format!("DBProxy {name} is not found."),
                ));
            }
        },
        None => inv.proxies.iter().collect(),
    };
    // AWS documents Filters as unsupported for this call; it ignores them, so do we.
    let (page, marker) = paginate(selected, params)?;
    let mut x = Xml::default();
    x.open_ns("DescribeDBProxiesResponse", RDS_XMLNS);
    x.open("DescribeDBProxiesResult");
    x.open("DBProxies");
    for p in page {
        x.open("member");
        proxy_xml(&mut x, p);
        x.close("member");
    }
    x.close("DBProxies");
    x.leaf_opt("Marker", marker.as_deref().unwrap_or(""));
    x.close("DescribeDBProxiesResult");
    x.response_metadata(request_id);
    x.close("DescribeDBProxiesResponse");
    Ok(x.0)
}

fn describe_db_proxy_targets(
    inv: &Inventory,
    params: &Params,
    request_id: &str,
) -> Result<String, ApiError> {
    let name = params.get("DBProxyName").cloned().unwrap_or_default();
    let Some(proxy) = inv.proxies.iter().find(|p| p.name == name) else {
        return Err(api_error(
            404,
            "DBProxyNotFoundFault",
            format!("DBProxy {name} is not found."),
        ));
    };
    // (RdsResourceId, Type, TrackedClusterId, Endpoint, Port, ARN)
    let mut targets: Vec<(String, &str, String, String, u16, String)> = Vec::new();
    for id in &proxy.targets {
        if let Some(c) = inv.clusters.iter().find(|c| c.id.eq_ignore_ascii_case(id)) {
            targets.push((
                c.id.clone(),
                "TRACKED_CLUSTER",
                c.id.clone(),
                String::new(),
                c.port,
                c.arn.clone(),
            ));
            for i in inv.instances.iter().filter(|i| {
                i.cluster_id
                    .as_deref()
                    .is_some_and(|cid| cid.eq_ignore_ascii_case(&c.id))
            }) {
                targets.push((
                    i.id.clone(),
                    "RDS_INSTANCE",
                    c.id.clone(),
                    i.address.clone(),
                    i.port,
                    i.arn.clone(),
                ));
            }
        } else if let Some(i) = inv.instances.iter().find(|i| i.id.eq_ignore_ascii_case(id)) {
            targets.push((
                i.id.clone(),
                "RDS_INSTANCE",
                String::new(),
                i.address.clone(),
                i.port,
                i.arn.clone(),
            ));
        }
    }
    let (page, marker) = paginate(targets, params)?;
    let mut x = Xml::default();
    x.open_ns("DescribeDBProxyTargetsResponse", RDS_XMLNS);
    x.open("DescribeDBProxyTargetsResult");
    x.open("Targets");
    for (id, kind, tracked, endpoint, port, arn) in page {
        x.open("member");
        x.leaf("TargetArn", &arn);
        x.leaf_opt("Endpoint", &endpoint);
        x.leaf_opt("TrackedClusterId", &tracked);
        x.leaf("RdsResourceId", &id);
        x.leaf("Port", &port.to_string());
        x.leaf("Type", kind);
        x.leaf(
            "Role",
            if kind == "RDS_INSTANCE" {
                "READ_WRITE"
            } else {
                "UNKNOWN"
            },
        );
        x.open("TargetHealth");
        x.leaf("State", "AVAILABLE");
        x.close("TargetHealth");
        x.close("member");
    }
    x.close("Targets");
    x.leaf_opt("Marker", marker.as_deref().unwrap_or(""));
    x.close("DescribeDBProxyTargetsResult");
    x.response_metadata(request_id);
    x.close("DescribeDBProxyTargetsResponse");
    Ok(x.0)
}

fn proxy_xml(x: &mut Xml, p: &Proxy) {
    let vpc = format!("vpc-{}", stable_hex("vpc", 17));
    x.leaf("DBProxyName", &p.name);
    x.leaf("DBProxyArn", &p.arn);
    x.leaf("Status", &p.status);
    x.leaf("EngineFamily", &p.engine_family);
    x.leaf("VpcId", &vpc);
    x.open("VpcSecurityGroupIds");
    x.leaf("member", &format!("sg-{}", stable_hex("sg", 17)));
    x.close("VpcSecurityGroupIds");
    x.open("VpcSubnetIds");
    for az in ["a", "b"] {
        x.leaf("member", &format!("subnet-{}", stable_hex(az, 17)));
    }
    x.close("VpcSubnetIds");
    if let Some(scheme) = &p.default_auth_scheme {
        x.leaf("DefaultAuthScheme", scheme);
    }
    if !p.iam_auth.is_empty() {
        x.open("Auth");
        x.open("member");
        x.leaf("AuthScheme", "SECRETS");
        x.leaf(
            "SecretArn",
            &format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-db-user-AbCdEf",
                p.name
            ),
        );
        x.leaf("IAMAuth", &p.iam_auth);
        x.leaf("ClientPasswordAuthType", "POSTGRES_SCRAM_SHA_256");
        x.close("member");
        x.close("Auth");
    }
    x.leaf(
        "RoleArn",
        &format!("arn:aws:iam::{ACCOUNT}:role/{}-proxy-role", p.name),
    );
    x.leaf_opt("Endpoint", &p.endpoint);
    x.leaf("RequireTLS", bool_str(p.require_tls));
    x.leaf("IdleClientTimeout", "1800");
    x.leaf("DebugLogging", "false");
    x.leaf("CreatedDate", CREATED);
    x.leaf("UpdatedDate", CREATED);
    x.leaf("EndpointNetworkType", "IPV4");
    x.leaf("TargetConnectionNetworkType", "IPV4");
}

fn arn_or_id_matches(wanted: &str, id: &str, arn: &str) -> bool {
    // Identifiers are stored lower-case and matched case-insensitively; ARNs exactly.
    wanted.eq_ignore_ascii_case(id) || wanted == arn
}

/// All of `items`, or the one `wanted` names (by id or ARN), or AWS's 404.
fn select_by_id<'a, T>(
    items: &'a [T],
    wanted: Option<&String>,
    id_and_arn: impl Fn(&T) -> (&str, &str),
    fault: &'static str,
    what: &str,
) -> Result<Vec<&'a T>, ApiError> {
    let Some(wanted) = wanted else {
        return Ok(items.iter().collect());
    };
    match items.iter().find(|item| {
        let (id, arn) = id_and_arn(item);
        arn_or_id_matches(wanted, id, arn)
    }) {
        Some(item) => Ok(vec![item]),
        None => Err(api_error(404, fault, format!("{what} {wanted} not found."))),
    }
}

fn describe_db_clusters(
    inv: &Inventory,
    params: &Params,
    request_id: &str,
) -> Result<String, ApiError> {
    let selected = select_by_id(
        &inv.clusters,
        params.get("DBClusterIdentifier"),
        |c| (&c.id, &c.arn),
        "DBClusterNotFoundFault",
        "DBCluster",
    )?;
    let selected = apply_filters(selected, params, |c: &Cluster, name| match name {
        "db-cluster-id" => Some(vec![c.id.clone(), c.arn.clone()]),
        "db-cluster-resource-id" => Some(vec![c.resource_id.clone()]),
        "engine" => Some(vec![c.engine.clone()]),
        _ => None,
    })?;
    let (page, marker) = paginate(selected, params)?;
    let mut x = Xml::default();
    x.open_ns("DescribeDBClustersResponse", RDS_XMLNS);
    x.open("DescribeDBClustersResult");
    x.leaf_opt("Marker", marker.as_deref().unwrap_or(""));
    x.open("DBClusters");
    for c in page {
        x.open("DBCluster");
        cluster_xml(&mut x, c, inv);
        x.close("DBCluster");
    }
    x.close("DBClusters");
    x.close("DescribeDBClustersResult");
    x.response_metadata(request_id);
    x.close("DescribeDBClustersResponse");
    Ok(x.0)
}

fn cluster_xml(x: &mut Xml, c: &Cluster, inv: &Inventory) {
    x.leaf("AllocatedStorage", "1");
    x.open("AvailabilityZones");
    for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
        x.leaf("AvailabilityZone", az);
    }
    x.close("AvailabilityZones");
    x.leaf("BackupRetentionPeriod", "7");
    x.leaf("DBClusterIdentifier", &c.id);
    x.leaf("DBClusterParameterGroup", "default.aurora-postgresql16");
    x.leaf("DBSubnetGroup", "default");
    x.leaf("Status", &c.status);
    x.leaf_opt("Endpoint", &c.endpoint);
    x.leaf_opt("ReaderEndpoint", &c.reader_endpoint);
    x.open("CustomEndpoints");
    x.close("CustomEndpoints");
    x.leaf("MultiAZ", "false");
    x.leaf("Engine", &c.engine);
    x.leaf("EngineVersion", &c.engine_version);
    x.leaf("Port", &c.port.to_string());
    x.leaf("MasterUsername", "postgres");
    x.open("DBClusterMembers");
    let members = inv.instances.iter().filter(|i| {
        i.cluster_id
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(&c.id))
    });
    for (n, member) in members.enumerate() {
        x.open("DBClusterMember");
        x.leaf("DBInstanceIdentifier", &member.id);
        x.leaf("IsClusterWriter", bool_str(n == 0));
        x.leaf("DBClusterParameterGroupStatus", "in-sync");
        x.leaf("PromotionTier", "1");
        x.close("DBClusterMember");
    }
    x.close("DBClusterMembers");
    x.leaf("HostedZoneId", HOSTED_ZONE_ID);
    x.leaf("StorageEncrypted", "true");
    x.leaf("DbClusterResourceId", &c.resource_id);
    x.leaf("DBClusterArn", &c.arn);
    x.leaf("IAMDatabaseAuthenticationEnabled", bool_str(c.iam_enabled));
    x.leaf("ClusterCreateTime", CREATED);
    x.leaf("EngineMode", "provisioned");
    x.leaf("DeletionProtection", "false");
    x.leaf("HttpEndpointEnabled", "false");
    x.leaf("CopyTagsToSnapshot", "false");
    x.leaf("CrossAccountClone", "false");
    x.open("TagList");
    x.close("TagList");
    x.leaf("NetworkType", "IPV4");
}

fn describe_db_instances(
    inv: &Inventory,
    params: &Params,
    request_id: &str,
) -> Result<String, ApiError> {
    let selected = select_by_id(
        &inv.instances,
        params.get("DBInstanceIdentifier"),
        |i| (&i.id, &i.arn),
        "DBInstanceNotFound",
        "DBInstance",
    )?;
    let selected = apply_filters(selected, params, |i: &Instance, name| match name {
        "db-cluster-id" => {
            let cluster = i.cluster_id.clone().unwrap_or_default();
            let arn = format!("arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{cluster}");
            Some(if cluster.is_empty() {
                vec![]
            } else {
                vec![cluster, arn]
            })
        }
        "db-instance-id" => Some(vec![i.id.clone(), i.arn.clone()]),
        "dbi-resource-id" => Some(vec![i.resource_id.clone()]),
        "engine" => Some(vec![i.engine.clone()]),
        _ => None,
    })?;
    let (page, marker) = paginate(selected, params)?;
    let mut x = Xml::default();
    x.open_ns("DescribeDBInstancesResponse", RDS_XMLNS);
    x.open("DescribeDBInstancesResult");
    x.leaf_opt("Marker", marker.as_deref().unwrap_or(""));
    x.open("DBInstances");
    for i in page {
        x.open("DBInstance");
        instance_xml(&mut x, i);
        x.close("DBInstance");
    }
    x.close("DBInstances");
    x.close("DescribeDBInstancesResult");
    x.response_metadata(request_id);
    x.close("DescribeDBInstancesResponse");
    Ok(x.0)
}

fn instance_xml(x: &mut Xml, i: &Instance) {
    let aurora = i.cluster_id.is_some();
    x.leaf("DBInstanceIdentifier", &i.id);
    x.leaf("DBInstanceClass", "db.r6g.large");
    x.leaf("Engine", &i.engine);
    x.leaf("DBInstanceStatus", &i.status);
    x.leaf("MasterUsername", "postgres");
    if !i.address.is_empty() {
        x.open("Endpoint");
        x.leaf("Address", &i.address);
        x.leaf("Port", &i.port.to_string());
        x.leaf("HostedZoneId", HOSTED_ZONE_ID);
        x.close("Endpoint");
    }
    x.leaf("AllocatedStorage", if aurora { "1" } else { "100" });
    x.leaf("InstanceCreateTime", CREATED);
    x.leaf("PreferredBackupWindow", "03:00-03:30");
    x.leaf("BackupRetentionPeriod", "7");
    x.leaf("AvailabilityZone", "us-east-1a");
    x.leaf("PreferredMaintenanceWindow", "sun:05:00-sun:05:30");
    x.leaf("MultiAZ", "false");
    x.leaf("EngineVersion", &i.engine_version);
    x.leaf("AutoMinorVersionUpgrade", "true");
    x.leaf("LicenseModel", "postgresql-license");
    x.leaf("PubliclyAccessible", "false");
    x.leaf("StorageType", if aurora { "aurora" } else { "gp3" });
    // RDS reports 0 here; the real port is Endpoint.Port.
    x.leaf("DbInstancePort", "0");
    if let Some(cluster) = &i.cluster_id {
        x.leaf("DBClusterIdentifier", cluster);
    }
    x.leaf("StorageEncrypted", "true");
    x.leaf("DbiResourceId", &i.resource_id);
    x.leaf("CACertificateIdentifier", "rds-ca-rsa2048-g1");
    x.leaf("CopyTagsToSnapshot", "false");
    x.leaf("MonitoringInterval", "0");
    x.leaf("DBInstanceArn", &i.arn);
    x.leaf("IAMDatabaseAuthenticationEnabled", bool_str(i.iam_enabled));
    x.leaf("PerformanceInsightsEnabled", "false");
    x.leaf("DeletionProtection", "false");
    x.open("TagList");
    x.close("TagList");
    x.leaf("NetworkType", "IPV4");
}

fn error_xml(xmlns: &str, status: u16, code: &str, message: &str, request_id: &str) -> String {
    let mut x = Xml::default();
    x.open_ns("ErrorResponse", xmlns);
    x.open("Error");
    // Sender: the caller's fault (4xx); Receiver: the service's (5xx).
    x.leaf("Type", if status >= 500 { "Receiver" } else { "Sender" });
    x.leaf("Code", code);
    x.leaf("Message", message);
    x.close("Error");
    x.leaf("RequestId", request_id);
    x.close("ErrorResponse");
    x.0
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// A minimal XML writer; every text and attribute value goes through [`escape`].
#[derive(Default)]
struct Xml(String);

impl Xml {
    fn open(&mut self, tag: &str) {
        let _ = write!(self.0, "<{tag}>");
    }

    fn open_ns(&mut self, tag: &str, xmlns: &str) {
        let _ = write!(self.0, "<{tag} xmlns=\"{}\">", escape(xmlns));
    }

    fn close(&mut self, tag: &str) {
        let _ = write!(self.0, "</{tag}>");
    }

    fn leaf(&mut self, tag: &str, value: &str) {
        let _ = write!(self.0, "<{tag}>{}</{tag}>", escape(value));
    }

    /// Omits the element when `value` is empty, as AWS omits absent members.
    fn leaf_opt(&mut self, tag: &str, value: &str) {
        if !value.is_empty() {
            self.leaf(tag, value);
        }
    }

    fn response_metadata(&mut self, request_id: &str) {
        self.open("ResponseMetadata");
        self.leaf("RequestId", request_id);
        self.close("ResponseMetadata");
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader as StdBufReader, Read, Write};
    use std::net::TcpStream as StdTcpStream;
    use std::time::Instant;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240501/eu-west-1/rds/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        /// Text of every `<tag>…</tag>` (leaf elements only).
        fn all(&self, tag: &str) -> Vec<String> {
            let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
            let mut out = Vec::new();
            let mut rest = self.body.as_str();
            while let Some(start) = rest.find(&open) {
                let after = &rest[start + open.len()..];
                let end = after.find(&close).expect("unclosed element");
                out.push(after[..end].to_string());
                rest = &after[end + close.len()..];
            }
            out
        }

        fn one(&self, tag: &str) -> String {
            let all = self.all(tag);
            assert_eq!(all.len(), 1, "<{tag}> in {}", self.body);
            all[0].clone()
        }
    }

    fn form_request(body: &str, auth: Option<&str>, extra_headers: &str) -> String {
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n{auth}{extra_headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn read_reply(reader: &mut impl BufRead) -> Reply {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: String::new(),
        };
        let length: usize = reply.header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reply.body = String::from_utf8(body).unwrap();
        reply
    }

    /// One request on its own connection, signed (as far as the server checks) with [`AUTH`].
    fn post(api: &RdsApi, body: &str) -> Reply {
        send_raw(api, &form_request(body, Some(AUTH), ""))
    }

    fn send_raw(api: &RdsApi, raw: &str) -> Reply {
        let mut stream = StdTcpStream::connect(api.addr()).unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        read_reply(&mut StdBufReader::new(stream))
    }

    fn article() -> RdsApi {
        RdsApi::start(Inventory::article()).unwrap()
    }

    #[test]
    fn describe_db_proxies_reports_the_article_proxy() {
        let api = article();
        let r = post(&api, "Action=DescribeDBProxies&Version=2014-10-31");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("text/xml"));
        let request_id = r.header("x-amzn-requestid").unwrap().to_string();
        assert_eq!(r.one("RequestId"), request_id);
        assert!(r.body.starts_with(
            "<DescribeDBProxiesResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><DescribeDBProxiesResult><DBProxies><member>"
        ));
        assert_eq!(r.one("DBProxyName"), "PostgreSqlProxy");
        assert_eq!(
            r.one("DBProxyArn"),
            "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdef0"
        );
        assert_eq!(
            r.one("Endpoint"),
            "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
        );
        assert_eq!(r.one("EngineFamily"), "POSTGRESQL");
        assert_eq!(r.one("Status"), "available");
        assert_eq!(r.one("RequireTLS"), "true");
        assert_eq!(r.one("IAMAuth"), "REQUIRED");
        assert_eq!(r.one("DefaultAuthScheme"), "IAM_AUTH");
        assert!(r.all("Marker").is_empty());

        let r = post(&api, "Action=DescribeDBProxies&DBProxyName=PostgreSqlProxy");
        assert_eq!(r.status, 200);
        assert_eq!(r.one("DBProxyName"), "PostgreSqlProxy");

        let seen = api.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].request_id, request_id);
        assert_eq!(seen[0].access_key_id.as_deref(), Some("AKIDEXAMPLE"));
        assert_eq!(seen[0].region.as_deref(), Some("eu-west-1"));
        assert_eq!(seen[0].service.as_deref(), Some("rds"));
        assert_eq!(seen[0].status, 200);
        assert_eq!(seen[1].params["DBProxyName"], "PostgreSqlProxy");
        assert_eq!(api.count("DescribeDBProxies"), 2);
    }

    #[test]
    fn describe_db_clusters_matches_ids_case_insensitively() {
        let api = article();
        let r = post(
            &api,
            "Action=DescribeDBClusters&Version=2014-10-31&DBClusterIdentifier=DatabaseCluster",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.one("DBClusterIdentifier"), "databasecluster");
        assert_eq!(
            r.one("Endpoint"),
            "databasecluster.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
        );
        assert_eq!(
            r.one("ReaderEndpoint"),
            "databasecluster.cluster-ro-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
        );
        assert_eq!(r.one("Port"), "5432");
        assert_eq!(r.one("Engine"), "aurora-postgresql");
        assert_eq!(r.one("IAMDatabaseAuthenticationEnabled"), "true");
        assert_eq!(
            r.one("DbClusterResourceId"),
            "cluster-ABCDEFGHIJKLMNOPQRSTUVWX12"
        );
        assert_eq!(r.one("DBInstanceIdentifier"), "databasecluster-writer");
        assert_eq!(r.one("IsClusterWriter"), "true");

        let r = post(&api, "Action=DescribeDBClusters&DBClusterIdentifier=nope");
        assert_eq!(r.status, 404);
        assert_eq!(r.one("Code"), "DBClusterNotFoundFault");
        assert_eq!(r.one("Message"), "DBCluster nope not found.");
    }

    #[test]
    fn describe_db_instances_lists_and_finds() {
        let api = article();
        let r = post(&api, "Action=DescribeDBInstances&Version=2014-10-31");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.all("DBInstanceIdentifier"),
            ["databasecluster-writer", "legacy-reporting"]
        );
        assert_eq!(r.all("IAMDatabaseAuthenticationEnabled"), ["true", "false"]);
        assert_eq!(r.all("DBClusterIdentifier"), ["databasecluster"]);
        assert_eq!(
            r.all("Address"),
            [
                "databasecluster-writer.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
                "legacy-reporting.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
            ]
        );

        let r = post(
            &api,
            "Action=DescribeDBInstances&DBInstanceIdentifier=LEGACY-REPORTING",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.one("DBInstanceIdentifier"), "legacy-reporting");
        assert_eq!(r.one("Engine"), "postgres");

        let r = post(
            &api,
            "Action=DescribeDBInstances&Filters.member.1.Name=db-cluster-id&Filters.member.1.Values.member.1=databasecluster",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.one("DBInstanceIdentifier"), "databasecluster-writer");

        let r = post(
            &api,
            "Action=DescribeDBInstances&Filters.member.1.Name=colour&Filters.member.1.Values.member.1=blue",
        );
        assert_eq!(r.status, 400);
        assert_eq!(r.one("Code"), "InvalidParameterValue");

        let r = post(&api, "Action=DescribeDBInstances&DBInstanceIdentifier=gone");
        assert_eq!(r.status, 404);
        assert_eq!(r.one("Code"), "DBInstanceNotFound");
        assert_eq!(r.one("Message"), "DBInstance gone not found.");
    }

    #[test]
    fn get_caller_identity_answers_from_the_inventory() {
        let api = article();
        let r = post(&api, "Action=GetCallerIdentity&Version=2011-06-15");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>"
        ));
        assert_eq!(
            r.one("Arn"),
            "arn:aws:sts::123456789012:assumed-role/OnCall/jane"
        );
        assert_eq!(r.one("Account"), "123456789012");
        assert_eq!(r.one("UserId"), "AROA3XFRBF535PLBIFPI4:jane");
    }

    #[test]
    fn proxy_names_are_case_sensitive_and_not_found_is_a_404() {
        let api = article();
        let r = post(&api, "Action=DescribeDBProxies&DBProxyName=postgresqlproxy");
        assert_eq!(r.status, 404);
        assert!(r.body.starts_with(
            "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>Sender</Type>"
        ));
        assert_eq!(r.one("Code"), "DBProxyNotFoundFault");
        assert_eq!(r.one("Message"), "DBProxy postgresqlproxy is not found.");
        assert_eq!(r.one("RequestId"), r.header("x-amzn-requestid").unwrap());
        assert_eq!(api.requests()[0].status, 404);
    }

    #[test]
    fn form_values_are_decoded_and_xml_values_escaped() {
        let api = article();
        let r = post(
            &api,
            "Action=DescribeDBProxies&DBProxyName=a+%3Cb%3E%26c%2B",
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.one("Message"), "DBProxy a &lt;b&gt;&amp;c+ is not found.");
        assert_eq!(api.requests()[0].params["DBProxyName"], "a <b>&c+");
    }

    #[test]
    fn pagination_walks_250_instances_in_three_pages() {
        let api = RdsApi::start(Inventory::default().with_extra_instances(250)).unwrap();
        let mut marker: Option<String> = None;
        let mut pages = Vec::new();
        loop {
            let mut body = "Action=DescribeDBInstances&MaxRecords=100".to_string();
            if let Some(m) = &marker {
                body.push_str(&format!("&Marker={m}"));
            }
            let r = post(&api, &body);
            assert_eq!(r.status, 200, "{}", r.body);
            pages.push(r.all("DBInstanceIdentifier"));
            marker = r.all("Marker").pop();
            if marker.is_none() {
                break;
            }
        }
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let all: Vec<String> = pages.concat();
        let expected: Vec<String> = (0..250).map(|i| format!("orders-db-{i:03}")).collect();
        assert_eq!(all, expected);
        assert_eq!(api.count("DescribeDBInstances"), 3);
    }

    #[test]
    fn max_records_and_markers_are_validated() {
        let api = RdsApi::start(Inventory::article().with_extra(30)).unwrap();
        for bad in ["5", "101", "ten"] {
            let r = post(&api, &format!("Action=DescribeDBProxies&MaxRecords={bad}"));
            assert_eq!(r.status, 400, "MaxRecords={bad}");
            assert_eq!(r.one("Code"), "InvalidParameterValue");
        }
        let r = post(&api, "Action=DescribeDBClusters&Marker=zz");
        assert_eq!(r.status, 400);
        assert_eq!(r.one("Code"), "InvalidParameterValue");
        // 31 clusters with MaxRecords=20: two pages.
        let r = post(&api, "Action=DescribeDBClusters&MaxRecords=20");
        assert_eq!(r.all("DBClusterIdentifier").len(), 20);
        let marker = r.one("Marker");
        let r = post(
            &api,
            &format!("Action=DescribeDBClusters&MaxRecords=20&Marker={marker}"),
        );
        assert_eq!(r.all("DBClusterIdentifier").len(), 11);
        assert!(r.all("Marker").is_empty());
    }

    #[test]
    fn throttle_twice_then_answer() {
        let api = article();
        api.set_fault(Fault::Throttle { times: 2 });
        let statuses: Vec<u16> = (0..3)
            .map(|_| {
                let r = post(&api, "Action=DescribeDBProxies");
                if r.status == 400 {
                    assert_eq!(r.one("Code"), "Throttling");
                    assert_eq!(r.one("Message"), "Rate exceeded");
                }
                r.status
            })
            .collect();
        assert_eq!(statuses, [400, 400, 200]);
        assert_eq!(api.fault(), Fault::None);
        assert_eq!(api.count("DescribeDBProxies"), 3);
    }

    #[test]
    fn server_errors_always_or_counted() {
        let api = article();
        api.set_fault(Fault::ServerError);
        for _ in 0..2 {
            let r = post(&api, "Action=DescribeDBClusters");
            assert_eq!(r.status, 500);
            assert_eq!(r.one("Type"), "Receiver");
            assert_eq!(r.one("Code"), "InternalFailure");
        }
        api.set_fault(Fault::ServerErrorTimes(1));
        assert_eq!(post(&api, "Action=DescribeDBClusters").status, 500);
        assert_eq!(post(&api, "Action=DescribeDBClusters").status, 200);

        // Scoped to one action, others are untouched.
        api.set_fault_for("DescribeDBProxies", Fault::ServerError);
        assert_eq!(post(&api, "Action=GetCallerIdentity").status, 200);
        assert_eq!(post(&api, "Action=DescribeDBProxies").status, 500);
    }

    #[test]
    fn delay_holds_the_answer() {
        let api = article();
        api.set_fault(Fault::Delay(Duration::from_millis(300)));
        let started = Instant::now();
        let r = post(&api, "Action=DescribeDBProxies");
        assert_eq!(r.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn requests_need_a_sigv4_authorization() {
        let api = article();
        let r = send_raw(&api, &form_request("Action=DescribeDBProxies", None, ""));
        assert_eq!(r.status, 403);
        assert_eq!(r.one("Code"), "MissingAuthenticationToken");
        let r = send_raw(
            &api,
            &form_request("Action=DescribeDBProxies", Some("Bearer abc"), ""),
        );
        assert_eq!(r.status, 403);
        assert_eq!(r.one("Code"), "IncompleteSignature");
        let seen = api.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].access_key_id, None);
        assert_eq!(seen[0].status, 403);
    }

    #[test]
    fn unknown_actions_are_rejected() {
        let api = article();
        let r = post(
            &api,
            "Action=DeleteDBCluster&DBClusterIdentifier=databasecluster",
        );
        assert_eq!(r.status, 400);
        assert_eq!(r.one("Code"), "InvalidAction");
        let r = post(&api, "Version=2014-10-31");
        assert_eq!(r.status, 400);
        assert_eq!(r.one("Code"), "MissingAction");
    }

    #[test]
    fn keep_alive_chunked_and_expect_continue() {
        let api = article();
        let stream = StdTcpStream::connect(api.addr()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = StdBufReader::new(stream);

        // Two requests on one connection.
        for _ in 0..2 {
            writer
                .write_all(form_request("Action=GetCallerIdentity", Some(AUTH), "").as_bytes())
                .unwrap();
            let r = read_reply(&mut reader);
            assert_eq!(r.status, 200);
            assert_eq!(r.header("connection"), None);
        }

        // A chunked body after Expect: 100-continue, on the same connection.
        let head = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: {AUTH}\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        writer.write_all(head.as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        reader.read_line(&mut line).unwrap();
        writer
            .write_all(b"7\r\nAction=\r\n1a;ext=1\r\nDescribeDBProxies&MaxRecor\r\n6\r\nds=100\r\n0\r\n\r\n")
            .unwrap();
        let r = read_reply(&mut reader);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.one("DBProxyName"), "PostgreSqlProxy");
        assert_eq!(api.requests()[2].params["MaxRecords"], "100");

        // Connection: close is honoured.
        writer
            .write_all(
                form_request(
                    "Action=GetCallerIdentity",
                    Some(AUTH),
                    "Connection: close\r\n",
                )
                .as_bytes(),
            )
            .unwrap();
        let r = read_reply(&mut reader);
        assert_eq!(r.header("connection"), Some("close"));
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
    }

    #[test]
    fn inventory_can_be_swapped_and_drop_stops_the_server() {
        let api = article();
        api.set_inventory(Inventory::default().with_extra_proxies(3));
        let r = post(&api, "Action=DescribeDBProxies");
        assert_eq!(
            r.all("DBProxyName"),
            ["orders-proxy-000", "orders-proxy-001", "orders-proxy-002"]
        );
        let addr = api.addr();
        drop(api);
        assert!(StdTcpStream::connect(addr).is_err());
    }

    // ---- The real consumer: the AWS SDK parses what the server writes. ----

    fn rds_client(api: &RdsApi, region: &'static str) -> aws_sdk_rds::Client {
        use aws_sdk_rds::config::retry::RetryConfig;
        use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_rds::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(
                "AKIDSDKTEST",
                "secret",
                Some("session-token".to_string()),
                None,
                "test",
            ))
            .endpoint_url(api.url())
            // Fast retries: the default backoff would make the retry tests slow.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();
        aws_sdk_rds::Client::from_conf(config)
    }

    #[tokio::test]
    async fn sdk_paginates_proxies_and_parses_every_field() {
        use aws_sdk_rds::types::{AuthScheme, DbProxyStatus, IamAuthMode};
        let api = RdsApi::start(Inventory::article().with_extra_proxies(250)).unwrap();
        let client = rds_client(&api, "eu-west-1");
        let proxies = client
            .describe_db_proxies()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(proxies.len(), 251);
        assert_eq!(api.count("DescribeDBProxies"), 3);
        assert_eq!(proxies[250].db_proxy_name(), Some("orders-proxy-249"));

        let p = &proxies[0];
        assert_eq!(p.db_proxy_name(), Some("PostgreSqlProxy"));
        assert_eq!(
            p.db_proxy_arn(),
            Some("arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdef0")
        );
        assert_eq!(
            p.endpoint(),
            Some("postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com")
        );
        assert_eq!(p.status(), Some(&DbProxyStatus::Available));
        assert_eq!(p.engine_family(), Some("POSTGRESQL"));
        assert_eq!(p.require_tls(), Some(true));
        assert_eq!(p.default_auth_scheme(), Some("IAM_AUTH"));
        assert_eq!(p.auth().len(), 1);
        assert_eq!(p.auth()[0].iam_auth(), Some(&IamAuthMode::Required));
        assert_eq!(p.auth()[0].auth_scheme(), Some(&AuthScheme::Secrets));
        assert_eq!(p.vpc_subnet_ids().len(), 2);
        assert!(p.created_date().is_some());

        let seen = api.requests();
        assert!(
            seen.iter()
                .all(|r| r.access_key_id.as_deref() == Some("AKIDSDKTEST")
                    && r.region.as_deref() == Some("eu-west-1")
                    && r.service.as_deref() == Some("rds")
                    && r.session_token.as_deref() == Some("session-token"))
        );
        assert!(seen[1].params.contains_key("Marker"));
    }

    #[tokio::test]
    async fn sdk_sees_not_found_codes() {
        use aws_sdk_rds::error::ProvideErrorMetadata;
        let api = article();
        let client = rds_client(&api, "us-east-1");
        let err = client
            .describe_db_proxies()
            .db_proxy_name("missing")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_db_proxy_not_found_fault(), "{err:?}");
        assert_eq!(err.code(), Some("DBProxyNotFoundFault"));
        assert_eq!(err.message(), Some("DBProxy missing is not found."));

        let err = client
            .describe_db_clusters()
            .db_cluster_identifier("missing")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_db_cluster_not_found_fault(), "{err:?}");

        let err = client
            .describe_db_instances()
            .db_instance_identifier("missing")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_db_instance_not_found_fault(), "{err:?}");
        assert_eq!(err.code(), Some("DBInstanceNotFound"));
    }

    #[tokio::test]
    async fn sdk_parses_clusters_and_instances() {
        let api = article();
        let client = rds_client(&api, "us-east-1");
        let out = client
            .describe_db_clusters()
            .db_cluster_identifier("databasecluster")
            .send()
            .await
            .unwrap();
        let c = &out.db_clusters()[0];
        assert_eq!(c.db_cluster_identifier(), Some("databasecluster"));
        assert_eq!(
            c.endpoint(),
            Some("databasecluster.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com")
        );
        assert_eq!(
            c.reader_endpoint(),
            Some("databasecluster.cluster-ro-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com")
        );
        assert_eq!(c.port(), Some(5432));
        assert_eq!(c.engine(), Some("aurora-postgresql"));
        assert_eq!(c.status(), Some("available"));
        assert_eq!(c.iam_database_authentication_enabled(), Some(true));
        assert_eq!(
            c.db_cluster_resource_id(),
            Some("cluster-ABCDEFGHIJKLMNOPQRSTUVWX12")
        );
        assert_eq!(
            c.db_cluster_arn(),
            Some("arn:aws:rds:us-east-1:123456789012:cluster:databasecluster")
        );
        let members = c.db_cluster_members();
        assert_eq!(members.len(), 1);
        assert_eq!(
            members[0].db_instance_identifier(),
            Some("databasecluster-writer")
        );
        assert_eq!(members[0].is_cluster_writer(), Some(true));
        assert!(c.cluster_create_time().is_some());

        let out = client.describe_db_instances().send().await.unwrap();
        assert_eq!(out.marker(), None);
        let [writer, legacy] = out.db_instances() else {
            panic!("{out:?}")
        };
        assert_eq!(writer.db_cluster_identifier(), Some("databasecluster"));
        assert_eq!(writer.engine(), Some("aurora-postgresql"));
        assert_eq!(writer.iam_database_authentication_enabled(), Some(true));
        assert_eq!(legacy.db_instance_identifier(), Some("legacy-reporting"));
        assert_eq!(legacy.engine(), Some("postgres"));
        assert_eq!(legacy.db_instance_status(), Some("available"));
        assert_eq!(legacy.iam_database_authentication_enabled(), Some(false));
        assert_eq!(
            legacy.dbi_resource_id(),
            Some("db-ZYXWVUTSRQPONMLKJIHGFEDC56")
        );
        let endpoint = legacy.endpoint().unwrap();
        assert_eq!(
            endpoint.address(),
            Some("legacy-reporting.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com")
        );
        assert_eq!(endpoint.port(), Some(5432));
    }

    #[tokio::test]
    async fn sdk_retries_throttling_and_gives_up_on_persistent_5xx() {
        use aws_sdk_rds::error::ProvideErrorMetadata;
        let api = article();
        let client = rds_client(&api, "us-east-1");
        api.set_fault(Fault::Throttle { times: 2 });
        let out = client.describe_db_proxies().send().await.unwrap();
        assert_eq!(out.db_proxies().len(), 1);
        assert_eq!(api.count("DescribeDBProxies"), 3);

        api.clear_requests();
        api.set_fault(Fault::ServerError);
        let err = client.describe_db_proxies().send().await.unwrap_err();
        assert_eq!(err.code(), Some("InternalFailure"), "{err:?}");
        assert_eq!(api.count("DescribeDBProxies"), 3);
    }

    #[tokio::test]
    async fn sdk_sts_get_caller_identity() {
        use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
        let api = article();
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("AKIDSTS", "secret", None, None, "test"))
            .endpoint_url(api.url())
            .build();
        let out = aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.arn(),
            Some("arn:aws:sts::123456789012:assumed-role/OnCall/jane")
        );
        assert_eq!(out.account(), Some("123456789012"));
        assert_eq!(out.user_id(), Some("AROA3XFRBF535PLBIFPI4:jane"));
        let seen = api.requests();
        assert_eq!(seen[0].service.as_deref(), Some("sts"));
        assert_eq!(seen[0].region.as_deref(), Some("eu-central-1"));
        assert_eq!(seen[0].access_key_id.as_deref(), Some("AKIDSTS"));
    }

    #[test]
    fn http_dates() {
        assert_eq!(amz_date_secs("19941106T084937Z"), Some(784_111_777));
        assert_eq!(amz_date_of(784_111_777), "19941106T084937Z");
        assert_eq!(amz_date_secs("1994-11-06"), None);
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    }

    fn sts_client(api: &RdsApi, secret: &str) -> aws_sdk_sts::Client {
        use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDSTS",
                secret.to_string(),
                Some("session".to_string()),
                None,
                "test",
            ))
            .endpoint_url(api.url())
            .build();
        aws_sdk_sts::Client::from_conf(config)
    }

    #[tokio::test]
    async fn signatures_are_checked_when_required() {
        use aws_sdk_sts::error::ProvideErrorMetadata;
        let api = article();
        // Off by default: any secret passes.
        sts_client(&api, "anything")
            .get_caller_identity()
            .send()
            .await
            .unwrap();
        api.require_signatures(&[("AKIDSTS", "the-secret")]);
        sts_client(&api, "the-secret")
            .get_caller_identity()
            .send()
            .await
            .unwrap();
        let err = sts_client(&api, "not-the-secret")
            .get_caller_identity()
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
        api.require_signatures(&[("AKIDOTHER", "the-secret")]);
        let err = sts_client(&api, "the-secret")
            .get_caller_identity()
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidClientTokenId"));
    }

    #[test]
    fn date_header_follows_the_clock_offset() {
        let api = article();
        let now = unix_now();
        api.set_clock_offset(-420);
        let reply = post(&api, "Action=GetCallerIdentity&Version=2011-06-15");
        let date = reply.header("date").expect("a Date header").to_string();
        let shown = (now - 425..=now - 415).map(http_date).collect::<Vec<_>>();
        assert!(shown.contains(&date), "{date} not ~7 min before now");
    }

    #[tokio::test]
    async fn sdk_parses_proxy_targets() {
        use aws_sdk_rds::types::TargetType;
        let api = article();
        let out = rds_client(&api, "us-east-1")
            .describe_db_proxy_targets()
            .db_proxy_name("PostgreSqlProxy")
            .send()
            .await
            .unwrap();
        let targets = out.targets();
        assert_eq!(targets[0].r#type(), Some(&TargetType::TrackedCluster));
        assert_eq!(targets[0].rds_resource_id(), Some("databasecluster"));
        assert_eq!(targets[1].r#type(), Some(&TargetType::RdsInstance));
        assert_eq!(targets[1].rds_resource_id(), Some("databasecluster-writer"));
        assert_eq!(targets[1].tracked_cluster_id(), Some("databasecluster"));
        let err = rds_client(&api, "us-east-1")
            .describe_db_proxy_targets()
            .db_proxy_name("nope")
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_db_proxy_not_found_fault()
        );
    }
}
