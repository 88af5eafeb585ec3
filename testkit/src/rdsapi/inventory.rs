//! The world the fake API serves, and the failures it can be told to inject: the public data
//! model ([`Proxy`], [`Cluster`], [`Instance`], [`Inventory`], [`Fault`]) and its constructors.
//! Generated ids and ARNs derive from names through `stable_hex`, so answers are the same on
//! every run. Nothing here does I/O.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{ACCOUNT, DNS_SUFFIX, REGION};

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

/// A failure to inject. Set with [`RdsApi::set_fault`](super::RdsApi::set_fault) (every action)
/// or [`RdsApi::set_fault_for`](super::RdsApi::set_fault_for) (one action); counted variants
/// revert to `None` once spent.
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

// ---------------------------------------------------------------------------------------------
// The data model's constructors.

/// Deterministic pseudo-random hex derived from `seed`, so generated ids are stable across runs.
pub(super) fn stable_hex(seed: &str, len: usize) -> String {
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
