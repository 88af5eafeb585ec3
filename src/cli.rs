//! The command line: clap types only. They stop at `target.rs`, which turns
//! them into what to reach; nothing below that knows about flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::EXIT_CODES_HELP;
// Output formats are the REPL's and the proxy's own; the flags name them.
pub use crate::output::{LogFormat, SqlOutput};

/// The variables that are not config keys; the keys' own come from the
/// key table (`config::env_help`).
const ENV_HELP: &str = "\
Environment:
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
  AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE   read by the AWS SDK as usual
  AWS_ENDPOINT_URL_STS                     STS endpoint (check, doctor, policy: caller identity)
  RDSIAM_CONFIG                            config file [default: <config dir>/rdsiam/config.toml]
  RDSIAM_PSQL                              default for --psql
  RDSIAM_MYSQL                             default for `rdsiam mysql --mysql`";

/// Reach AWS RDS / Aurora PostgreSQL with IAM authentication, directly or
/// through RDS Proxy, with no stored password.
#[derive(Debug, Parser)]
#[command(
    name = "rdsiam",
    version,
    propagate_version = true,
    after_help = format!("{ENV_HELP}\n{}\n\n{EXIT_CODES_HELP}", crate::config::env_help()),
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a 15-minute IAM auth token for the target (the only command that prints one)
    #[command(after_help = EXIT_CODES_HELP)]
    Token(TokenArgs),
    /// Connect over verified TLS and show who you are (user, database, server, TLS, AWS identity)
    #[command(after_help = EXIT_CODES_HELP)]
    Check(CheckArgs),
    /// Start psql with a fresh token in PGPASSWORD (never in argv); psql's exit status is ours
    #[command(after_help = EXIT_CODES_HELP)]
    Psql(PsqlArgs),
    /// Start the mysql/mariadb client with a fresh token (never in argv), TLS verified; MySQL and MariaDB targets
    #[command(after_help = EXIT_CODES_HELP)]
    Mysql(MysqlArgs),
    /// A built-in SQL prompt over verified TLS; -c/-f/stdin run without a terminal
    #[command(after_help = EXIT_CODES_HELP)]
    Sql(SqlArgs),
    /// List the RDS proxies, clusters and instances in the region, with IAM auth on or off
    #[command(after_help = EXIT_CODES_HELP)]
    List(ListArgs),
    /// List the named targets in the config file, or show one with where each value comes from
    Targets(TargetsArgs),
    /// Find why an IAM login fails: credentials, identity and clock, target, policy, network, TLS, login, inside
    #[command(after_help = DOCTOR_HELP)]
    Doctor(DoctorArgs),
    /// Print the least-privilege IAM policy allowing rds-db:connect on the target for these users
    #[command(after_help = EXIT_CODES_HELP)]
    Policy(PolicyArgs),
    /// A local proxy: any PostgreSQL client logs in with IAM tokens it never sees, for hours
    #[command(after_help = PROXY_HELP)]
    Proxy(ProxyArgs),
    /// Run one command with a private proxy (PGHOST etc. point at it) for as long as it runs
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout
    Man,
}

/// What to reach and as whom; shared by every command that reaches a database.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// A named target from the config file (`rdsiam targets` lists them)
    #[arg(value_name = "TARGET", help_heading = "Target")]
    pub target: Option<String>,

    /// Ignore the config file
    #[arg(long, help_heading = "Target")]
    pub no_config: bool,

    /// RDS Proxy name (exact match first, then case-insensitive)
    #[arg(long, value_name = "NAME", group = "kind", help_heading = "Target")]
    pub proxy: Option<String>,

    /// Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)
    #[arg(long, value_name = "ID", group = "kind", help_heading = "Target")]
    pub cluster: Option<String>,

    /// With --cluster: the cluster's reader endpoint instead of the writer
    #[arg(long, conflicts_with_all = ["proxy", "instance", "host"], help_heading = "Target")]
    pub reader: bool,

    /// DB instance identifier
    #[arg(long, value_name = "ID", group = "kind", help_heading = "Target")]
    pub instance: Option<String>,

    /// Endpoint host name, used as is (no RDS API call)
    #[arg(long, value_name = "HOST", group = "kind", help_heading = "Target")]
    pub host: Option<String>,

    /// Port [default: the API's port, else 5432; 3306 for MySQL]
    #[arg(long, value_name = "N", value_parser = parse_port, help_heading = "Target")]
    pub port: Option<u16>,

    /// The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]
    #[arg(long, value_enum, value_name = "ENGINE", help_heading = "Target")]
    pub engine: Option<EngineArg>,

    /// Database user, the role granted rds_iam [env: PGUSER]
    #[arg(short = 'U', long, value_name = "USER", help_heading = "Target")]
    pub user: Option<String>,

    /// Database name [env: PGDATABASE]
    #[arg(short = 'd', long, value_name = "DB", help_heading = "Target")]
    pub dbname: Option<String>,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Where AWS settings come from; credentials and the rest belong to the SDK.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile's]
    #[arg(long, value_name = "REGION", help_heading = "AWS")]
    pub region: Option<String>,

    /// AWS profile from ~/.aws/config [env: AWS_PROFILE]
    #[arg(long, value_name = "PROFILE", help_heading = "AWS")]
    pub profile: Option<String>,

    /// RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]
    #[arg(long, value_name = "URL", help_heading = "AWS")]
    pub endpoint_url: Option<String>,

    /// Seconds each AWS API call (retries included) and each credentials
    /// lookup (credential_process, SSO, assume-role) may take [default: 15]
    /// [env: RDSIAM_API_TIMEOUT]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "AWS")]
    pub api_timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenOutput {
    /// The token alone
    Text,
    /// token, host, port, user, region, expires_at
    Json,
    /// `export PG…=` lines for eval (MySQL targets: `MYSQL_HOST`, `MYSQL_TCP_PORT`, `MYSQL_PWD`…)
    Env,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = TokenOutput::Text)]
    pub output: TokenOutput,
}

/// How to reach the endpoint and how to trust it; shared by check, psql and sql.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnArgs {
    /// Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH
    /// tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Connection")]
    pub via: Option<String>,

    /// TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS
    #[arg(long, value_enum, help_heading = "Connection")]
    pub sslmode: Option<SslModeArg>,

    /// PEM file of trusted roots, replacing the built-in RDS + Amazon bundle
    /// (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub ca_bundle: Option<PathBuf>,

    /// Seconds to wait for TCP, TLS and login together [default: 10]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Connection")]
    pub connect_timeout: Option<u64>,
}

/// `--engine`; `target.rs` turns it into [`crate::engine::Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// PostgreSQL, Aurora PostgreSQL
    Postgres,
    /// MySQL, Aurora MySQL, MariaDB
    Mysql,
}

/// `--sslmode`; `target.rs` turns it into [`crate::tls::SslMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SslModeArg {
    /// Verify the chain and that the certificate names the endpoint host
    VerifyFull,
    /// Verify the chain only
    VerifyCa,
    /// Encrypt without verifying (not recommended)
    Require,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub conn: ConnArgs,

    /// Fail with exit 6 unless the session's current_user is USER
    #[arg(long, value_name = "USER")]
    pub expect_user: Option<String>,

    /// Fail with exit 6 unless the session is on the writer (not a read-only server)
    #[arg(long, conflicts_with = "expect_reader")]
    pub expect_writer: bool,

    /// Fail with exit 6 unless the session is on a reader (a hot standby)
    #[arg(long)]
    pub expect_reader: bool,

    /// Skip the STS GetCallerIdentity call
    #[arg(long)]
    pub no_aws_identity: bool,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = CheckOutput::Text)]
    pub output: CheckOutput,
}

#[derive(Debug, Args)]
pub struct PsqlArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub conn: ConnArgs,

    /// The psql binary to run [default: psql on PATH] [env: RDSIAM_PSQL]
    #[arg(long, value_name = "PATH")]
    pub psql: Option<PathBuf>,

    /// Show the environment psql would get (password masked) and exit
    #[arg(long)]
    pub print_env: bool,

    /// Run psql behind a private proxy, as `rdsiam run` does, so `\c` and
    /// reconnects keep working after the first token's 15 minutes
    #[arg(long, conflicts_with = "print_env")]
    pub long: bool,

    /// Arguments passed to psql unchanged (after `--`)
    #[arg(last = true, value_name = "PSQL_ARGS", allow_hyphen_values = true)]
    pub psql_args: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct MysqlArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub conn: ConnArgs,

    /// The client to run [default: mysql on PATH, else mariadb] [env: RDSIAM_MYSQL]
    #[arg(long, value_name = "PATH")]
    pub mysql: Option<PathBuf>,

    /// Arguments passed to the client unchanged (after `--`)
    #[arg(last = true, value_name = "MYSQL_ARGS", allow_hyphen_values = true)]
    pub mysql_args: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub conn: ConnArgs,

    /// Run this SQL and exit (repeatable; runs in order)
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// Run the SQL in FILE and exit
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Result format
    #[arg(short, long, value_enum, default_value_t = SqlOutput::Table)]
    pub output: SqlOutput,

    /// Keep going after a failed statement (exit 1 at the end)
    #[arg(long)]
    pub continue_on_error: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableOutput {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = TableOutput::Table)]
    pub output: TableOutput,
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    #[command(subcommand)]
    pub action: Option<TargetsAction>,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = TableOutput::Table, global = true)]
    pub output: TableOutput,
}

#[derive(Debug, Subcommand)]
pub enum TargetsAction {
    /// Show a target's resolved settings and where each value comes from
    Show {
        /// The target's name
        name: String,
    },
    /// Print the target names, one per line (used by shell completion)
    #[command(hide = true)]
    Names,
}

const DOCTOR_HELP: &str = "\
Steps: 1 credentials, 2 identity (STS, clock skew), 3 target (RDS API), 4 policy (the
rds-db:connect ARN), 5 network (DNS, TCP), 6 tls, 7 login (fresh token), 8 inside.
A step that needs a failed one is skipped; all others run.

Exit codes:
  0  nothing failed (warnings allowed unless --strict)
  1  other error
  2  usage (bad flags, config or input)
  3  the first failure is on the AWS side (credentials, clock, API, target, IAM auth off)
  4  the first failure is network or TLS
  5  the first failure is the database refusing the login (or a missing database)
  6  --strict and a step warned";

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub conn: ConnArgs,

    /// Output format (json: a stable schema, see the README)
    #[arg(short, long, value_enum, default_value_t = CheckOutput::Text)]
    pub output: CheckOutput,

    /// Treat a warning as a failure (exit 6)
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyOutput {
    /// An IAM policy document, as `aws iam create-policy --policy-document` takes it
    Json,
    /// `data "aws_iam_policy_document"` blocks
    Terraform,
}

/// `policy` takes several users, so it spells out the target flags itself
/// (TargetArgs has one `--user`).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// A named target from the config file (`rdsiam targets` lists them)
    #[arg(value_name = "TARGET", help_heading = "Target")]
    pub target: Option<String>,

    /// Ignore the config file
    #[arg(long, help_heading = "Target")]
    pub no_config: bool,

    /// RDS Proxy name
    #[arg(long, value_name = "NAME", group = "kind", help_heading = "Target")]
    pub proxy: Option<String>,

    /// Aurora cluster identifier
    #[arg(long, value_name = "ID", group = "kind", help_heading = "Target")]
    pub cluster: Option<String>,

    /// With --cluster: the reader endpoint (same policy as the writer)
    #[arg(long, conflicts_with_all = ["proxy", "instance", "host"], help_heading = "Target")]
    pub reader: bool,

    /// DB instance identifier
    #[arg(long, value_name = "ID", group = "kind", help_heading = "Target")]
    pub instance: Option<String>,

    /// Refused with a clear message: a host name carries no resource id
    #[arg(long, value_name = "HOST", group = "kind", hide = true)]
    pub host: Option<String>,

    /// Database users the policy allows (repeatable) [default: the target's user, PGUSER]
    #[arg(
        short = 'U',
        long = "user",
        value_name = "USER",
        help_heading = "Target"
    )]
    pub users: Vec<String>,

    /// Account of the resource ARNs [default: from STS GetCallerIdentity]
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,

    /// For an end-to-end IAM proxy: print the policy its own role needs instead
    #[arg(long)]
    pub proxy_role: bool,

    /// Let --user hold IAM policy variables such as `${aws:username}`, which
    /// IAM expands per caller (refused unless asked for)
    #[arg(long)]
    pub allow_policy_variables: bool,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Output format
    #[arg(short, long, value_enum, default_value_t = PolicyOutput::Json)]
    pub output: PolicyOutput,
}

impl PolicyArgs {
    /// The shared target flags, with the first user standing for all.
    pub fn target_args(&self) -> TargetArgs {
        TargetArgs {
            target: self.target.clone(),
            no_config: self.no_config,
            proxy: self.proxy.clone(),
            cluster: self.cluster.clone(),
            reader: self.reader,
            instance: self.instance.clone(),
            host: self.host.clone(),
            port: None,
            engine: None,
            user: self.users.first().cloned(),
            dbname: None,
            aws: self.aws.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

const PROXY_HELP: &str = "\
Examples:
  rdsiam proxy --proxy PostgreSqlProxy -U iamuserapp -d app
  psql \"host=127.0.0.1 port=5432 user=iamuserapp dbname=app sslmode=disable\"
  rdsiam proxy prod-orders reporting --listen 127.0.0.1:6432 --unix-socket /tmp/rdsiam

Exit codes:
  0  stopped by SIGTERM/SIGINT or POST /quitquitquit after the drain (a stop asked for is a
     success: orchestrators read anything else as a crash); --wait: the proxy is ready
  2  usage (bad flags, config or input)
  3  AWS side (credentials, region, API error, target not found)
  4  a listener could not bind (port in use, no such address)
  6  --wait: the proxy was not ready in time";

const RUN_HELP: &str = "\
Examples:
  rdsiam run prod-orders -- pg_dump -Fd -j 8 -f orders.dump
  rdsiam run --proxy PostgreSqlProxy -U iamuserapp -d app -- psql

Exit codes: COMMAND's own status (128+N when signal N ended it); 127 when COMMAND is not found;
before COMMAND starts, rdsiam's own: 2 usage, 3 AWS side, 4 network or TLS.";

/// The local listeners and limits of `rdsiam proxy`. Each also reads
/// `RDSIAM_<FLAG>` and the config file's key of the same name (the key
/// table in `config.rs`); defaults are applied after that layering.
#[derive(Debug, Clone, Default, Args)]
pub struct ListenArgs {
    /// TCP address for the first target (ports count up for more targets; `none`: no TCP).
    /// Anything but loopback lets whoever reaches it log in as you [default: 127.0.0.1:5432] [env: RDSIAM_LISTEN]
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Proxy")]
    pub listen: Option<String>,

    /// Also listen on DIR/.s.PGSQL.PORT (DIR made 0700 if missing), for `psql -h DIR -p PORT` [env: RDSIAM_UNIX_SOCKET]
    #[arg(long, value_name = "DIR", help_heading = "Proxy")]
    pub unix_socket: Option<PathBuf>,

    /// Serve /startup, /liveness, /readiness and /metrics (Prometheus) on ADDR:PORT [default: off] [env: RDSIAM_HTTP_ADDRESS]
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Proxy")]
    pub http_address: Option<String>,

    /// Client connections open at once; more get FATAL 53300 [default: 1000] [env: RDSIAM_MAX_CONNECTIONS]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "Proxy")]
    pub max_connections: Option<u32>,

    /// New upstream logins per second; more wait their turn (RDS throttles IAM logins at 200/s) [default: 100] [env: RDSIAM_MAX_CONNECTION_RATE]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000), help_heading = "Proxy")]
    pub max_connection_rate: Option<u32>,

    /// Seconds to keep accepting after SIGTERM, readiness failing, so load balancers and
    /// Services stop sending clients first [default: 0] [env: RDSIAM_MIN_SIGTERM_DELAY]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400), help_heading = "Proxy")]
    pub min_sigterm_delay: Option<u64>,

    /// Seconds open connections get to finish after SIGTERM/SIGINT (a second signal ends at once) [default: 0] [env: RDSIAM_MAX_SIGTERM_DELAY]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400), help_heading = "Proxy")]
    pub max_sigterm_delay: Option<u64>,

    /// Connection log format on stderr [default: text] [env: RDSIAM_LOG_FORMAT]
    #[arg(long, value_enum, help_heading = "Proxy")]
    pub log_format: Option<LogFormat>,

    /// Stop (drain, exit 0) on `POST /quitquitquit` to the --http-address: for a sidecar whose
    /// main container is done. Anyone who can reach that address can stop the proxy [env: RDSIAM_QUITQUITQUIT]
    #[arg(long, help_heading = "Proxy")]
    pub quitquitquit: bool,

    /// Start nothing: wait up to SECS (default 30) for the proxy serving --http-address to be
    /// ready (GET /readiness is 200), then exit 0; 6 if it is not (for init scripts)
    #[arg(long, value_name = "SECS", num_args = 0..=1, require_equals = true, default_missing_value = "30",
          value_parser = clap::value_parser!(u64).range(1..=86_400), help_heading = "Proxy")]
    pub wait: Option<u64>,

    /// Also admit this local account (repeatable); by default only yours may connect, since
    /// whoever connects logs in as you
    #[arg(long, value_name = "NAME|UID", help_heading = "Proxy")]
    pub allow_user: Vec<String>,

    /// Admit every local account (needed for a non-loopback --listen): each logs in as you
    #[arg(long, help_heading = "Proxy")]
    pub allow_any_local_user: bool,
}

/// `--pool` and its limits, for `proxy` and `run`.
#[derive(Debug, Args, Clone, Default)]
pub struct PoolArgs {
    /// Keep the upstream session of a client that ended cleanly, reset with DISCARD ALL,
    /// for the next client with the same user, database and startup parameters (session
    /// pooling: saves a TLS + IAM login per client)
    #[arg(long, env = "RDSIAM_POOL", help_heading = "Pool")]
    pub pool: bool,

    /// With --pool: idle sessions kept per user, database and parameters
    #[arg(long, value_name = "N", default_value_t = 20, env = "RDSIAM_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=10_000), help_heading = "Pool")]
    pub pool_size: u32,

    /// With --pool: seconds a session may sit idle before it is closed
    #[arg(long, value_name = "SECS", default_value_t = 60, env = "RDSIAM_POOL_IDLE_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=86_400), help_heading = "Pool")]
    pub pool_idle_timeout: u64,

    /// With --pool: seconds from a session's login after which it is not reused (default
    /// under the 15-minute life of the token it logged in with)
    #[arg(long, value_name = "SECS", default_value_t = 600, env = "RDSIAM_POOL_MAX_LIFETIME", value_parser = clap::value_parser!(u64).range(1..=86_400), help_heading = "Pool")]
    pub pool_max_lifetime: u64,
}

/// How `rdsiam proxy`/`run` log in upstream and come through a failover (issue 19).
#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    /// Only a writer will do: a login that reaches a read-only server (or none) is retried
    /// until --failover-timeout (always so for --cluster without --reader)
    #[arg(long, help_heading = "Failover")]
    pub expect_writer: bool,

    /// Seconds a login for a writer target keeps retrying through a failover
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Failover")]
    pub failover_timeout: u64,

    /// Seconds the server may take to answer a login once TCP and TLS are up (a busy server is slow, not unreachable)
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Failover")]
    pub login_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// More named targets, one listener each
    #[arg(value_name = "MORE_TARGETS", help_heading = "Target")]
    pub more_targets: Vec<String>,

    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub pool: PoolArgs,

    #[command(flatten)]
    pub failover: FailoverArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub failover: FailoverArgs,

    /// Client connections COMMAND may open at once
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,

    #[command(flatten)]
    pub pool: PoolArgs,

    /// The command and its arguments (after `--`)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// Ports are 1..=65535; 0 means "any" to the OS and never names an endpoint.
fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "`{value}` is not a port: use a number from 1 to 65535"
        )),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rdsiam").chain(args.iter().copied()))
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flag_help_names_the_variables_of_the_key_table() {
        let cli = Cli::command();
        let check = cli.find_subcommand("check").unwrap();
        let proxy = cli.find_subcommand("proxy").unwrap();
        for key in crate::config::KEYS.iter().filter(|k| !k.env.is_empty()) {
            // The proxy's own keys are flags of `proxy` only.
            let arg = check
                .get_arguments()
                .chain(proxy.get_arguments())
                .find(|a| a.get_long() == Some(key.name))
                .unwrap_or_else(|| panic!("no --{} flag", key.name));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            for var in key.env {
                assert!(
                    help.contains(var),
                    "--{} help lacks {var}: {help}",
                    key.name
                );
            }
        }
    }

    #[test]
    fn token_with_host_parses() {
        let cli = parse(&[
            "token",
            "--host",
            "h",
            "--port",
            "6543",
            "-U",
            "u",
            "--region",
            "eu-west-1",
        ])
        .unwrap();
        let Command::Token(args) = cli.command else {
            panic!("not token")
        };
        assert_eq!(args.target.host.as_deref(), Some("h"));
        assert_eq!(args.target.port, Some(6543));
        assert_eq!(args.target.user.as_deref(), Some("u"));
        assert_eq!(args.target.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(args.output, TokenOutput::Text);
    }

    #[test]
    fn two_target_kinds_are_a_usage_error() {
        let err = parse(&["token", "--proxy", "p", "--cluster", "c"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn reader_needs_cluster() {
        let err = parse(&["token", "--proxy", "p", "--reader"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        // Alone it may complete a named target's cluster; target.rs checks.
        assert!(parse(&["token", "reporting", "--reader"]).is_ok());
    }

    #[test]
    fn port_out_of_range_is_rejected() {
        for bad in ["0", "65536", "-1", "http"] {
            let err = parse(&["token", "--host", "h", &format!("--port={bad}")]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
    }

    #[test]
    fn output_formats() {
        for (flag, want) in [
            ("text", TokenOutput::Text),
            ("json", TokenOutput::Json),
            ("env", TokenOutput::Env),
        ] {
            let cli = parse(&["token", "--host", "h", "-o", flag]).unwrap();
            let Command::Token(args) = cli.command else {
                panic!()
            };
            assert_eq!(args.output, want);
        }
    }
}
