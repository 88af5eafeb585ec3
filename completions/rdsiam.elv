
use builtin;
use str;

set edit:completion:arg-completer[rdsiam] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'rdsiam'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'rdsiam'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand token 'Print a 15-minute IAM auth token for the target (the only command that prints one)'
            cand check 'Connect over verified TLS and show who you are (user, database, server, TLS, AWS identity)'
            cand psql 'Start psql with a fresh token in PGPASSWORD (never in argv); psql''s exit status is ours'
            cand mysql 'Start the mysql/mariadb client with a fresh token (never in argv), TLS verified; MySQL and MariaDB targets'
            cand sql 'A built-in SQL prompt over verified TLS; -c/-f/stdin run without a terminal'
            cand list 'List the RDS proxies, clusters and instances in the region, with IAM auth on or off'
            cand targets 'List the named targets in the config file, or show one with where each value comes from'
            cand doctor 'Find why an IAM login fails: credentials, identity and clock, target, policy, network, TLS, login, inside'
            cand policy 'Print the least-privilege IAM policy allowing rds-db:connect on the target for these users'
            cand proxy 'A local proxy: any PostgreSQL client logs in with IAM tokens it never sees, for hours'
            cand run 'Run one command with a private proxy (PGHOST etc. point at it) for as long as it runs'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff) to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdsiam;token'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;check'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand --via 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]'
            cand --sslmode 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS'
            cand --ca-bundle 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]'
            cand --connect-timeout 'Seconds to wait for TCP, TLS and login together [default: 10]'
            cand --expect-user 'Fail with exit 6 unless the session''s current_user is USER'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand --expect-writer 'Fail with exit 6 unless the session is on the writer (not a read-only server)'
            cand --expect-reader 'Fail with exit 6 unless the session is on a reader (a hot standby)'
            cand --no-aws-identity 'Skip the STS GetCallerIdentity call'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;psql'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand --via 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]'
            cand --sslmode 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS'
            cand --ca-bundle 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]'
            cand --connect-timeout 'Seconds to wait for TCP, TLS and login together [default: 10]'
            cand --psql 'The psql binary to run [default: psql on PATH] [env: RDSIAM_PSQL]'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand --print-env 'Show the environment psql would get (password masked) and exit'
            cand --long 'Run psql behind a private proxy, as `rdsiam run` does, so `\c` and reconnects keep working after the first token''s 15 minutes'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;mysql'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand --via 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]'
            cand --sslmode 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS'
            cand --ca-bundle 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]'
            cand --connect-timeout 'Seconds to wait for TCP, TLS and login together [default: 10]'
            cand --mysql 'The client to run [default: mysql on PATH, else mariadb] [env: RDSIAM_MYSQL]'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;sql'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand --via 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]'
            cand --sslmode 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS'
            cand --ca-bundle 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]'
            cand --connect-timeout 'Seconds to wait for TCP, TLS and login together [default: 10]'
            cand -c 'Run this SQL and exit (repeatable; runs in order)'
            cand --command 'Run this SQL and exit (repeatable; runs in order)'
            cand -f 'Run the SQL in FILE and exit'
            cand --file 'Run the SQL in FILE and exit'
            cand -o 'Result format'
            cand --output 'Result format'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand --continue-on-error 'Keep going after a failed statement (exit 1 at the end)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;list'= {
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;targets'= {
            cand -o 'Output format'
            cand --output 'Output format'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'Show a target''s resolved settings and where each value comes from'
            cand names 'Print the target names, one per line (used by shell completion)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdsiam;targets;show'= {
            cand -o 'Output format'
            cand --output 'Output format'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;targets;names'= {
            cand -o 'Output format'
            cand --output 'Output format'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;targets;help'= {
            cand show 'Show a target''s resolved settings and where each value comes from'
            cand names 'Print the target names, one per line (used by shell completion)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdsiam;targets;help;show'= {
        }
        &'rdsiam;targets;help;names'= {
        }
        &'rdsiam;targets;help;help'= {
        }
        &'rdsiam;doctor'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand --via 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]'
            cand --sslmode 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS'
            cand --ca-bundle 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]'
            cand --connect-timeout 'Seconds to wait for TCP, TLS and login together [default: 10]'
            cand -o 'Output format (json: a stable schema, see the README)'
            cand --output 'Output format (json: a stable schema, see the README)'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand --strict 'Treat a warning as a failure (exit 6)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;policy'= {
            cand --proxy 'RDS Proxy name'
            cand --cluster 'Aurora cluster identifier'
            cand --instance 'DB instance identifier'
            cand --host 'Refused with a clear message: a host name carries no resource id'
            cand -U 'Database users the policy allows (repeatable) [default: the target''s user, PGUSER]'
            cand --user 'Database users the policy allows (repeatable) [default: the target''s user, PGUSER]'
            cand --account 'Account of the resource ARNs [default: from STS GetCallerIdentity]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the reader endpoint (same policy as the writer)'
            cand --proxy-role 'For an end-to-end IAM proxy: print the policy its own role needs instead'
            cand --allow-policy-variables 'Let --user hold IAM policy variables such as `${aws:username}`, which IAM expands per caller (refused unless asked for)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;proxy'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand --via 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]'
            cand --sslmode 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS'
            cand --ca-bundle 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]'
            cand --connect-timeout 'Seconds to wait for TCP, TLS and login together [default: 10]'
            cand --listen 'TCP address for the first target (ports count up for more targets; `none`: no TCP). Anything but loopback lets whoever reaches it log in as you [default: 127.0.0.1:5432] [env: RDSIAM_LISTEN]'
            cand --unix-socket 'Also listen on DIR/.s.PGSQL.PORT (DIR made 0700 if missing), for `psql -h DIR -p PORT` [env: RDSIAM_UNIX_SOCKET]'
            cand --http-address 'Serve /startup, /liveness, /readiness and /metrics (Prometheus) on ADDR:PORT [default: off] [env: RDSIAM_HTTP_ADDRESS]'
            cand --max-connections 'Client connections open at once; more get FATAL 53300 [default: 1000] [env: RDSIAM_MAX_CONNECTIONS]'
            cand --max-connection-rate 'New upstream logins per second; more wait their turn (RDS throttles IAM logins at 200/s) [default: 100] [env: RDSIAM_MAX_CONNECTION_RATE]'
            cand --min-sigterm-delay 'Seconds to keep accepting after SIGTERM, readiness failing, so load balancers and Services stop sending clients first [default: 0] [env: RDSIAM_MIN_SIGTERM_DELAY]'
            cand --max-sigterm-delay 'Seconds open connections get to finish after SIGTERM/SIGINT (a second signal ends at once) [default: 0] [env: RDSIAM_MAX_SIGTERM_DELAY]'
            cand --log-format 'Connection log format on stderr [default: text] [env: RDSIAM_LOG_FORMAT]'
            cand --wait 'Start nothing: wait up to SECS (default 30) for the proxy serving --http-address to be ready (GET /readiness is 200), then exit 0; 6 if it is not (for init scripts)'
            cand --allow-user 'Also admit this local account (repeatable); by default only yours may connect, since whoever connects logs in as you'
            cand --pool-size 'With --pool: idle sessions kept per user, database and parameters'
            cand --pool-idle-timeout 'With --pool: seconds a session may sit idle before it is closed'
            cand --pool-max-lifetime 'With --pool: seconds from a session''s login after which it is not reused (default under the 15-minute life of the token it logged in with)'
            cand --failover-timeout 'Seconds a login for a writer target keeps retrying through a failover'
            cand --login-timeout 'Seconds the server may take to answer a login once TCP and TLS are up (a busy server is slow, not unreachable)'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand --quitquitquit 'Stop (drain, exit 0) on `POST /quitquitquit` to the --http-address: for a sidecar whose main container is done. Anyone who can reach that address can stop the proxy [env: RDSIAM_QUITQUITQUIT]'
            cand --allow-any-local-user 'Admit every local account (needed for a non-loopback --listen): each logs in as you'
            cand --pool 'Keep the upstream session of a client that ended cleanly, reset with DISCARD ALL, for the next client with the same user, database and startup parameters (session pooling: saves a TLS + IAM login per client)'
            cand --expect-writer 'Only a writer will do: a login that reaches a read-only server (or none) is retried until --failover-timeout (always so for --cluster without --reader)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;run'= {
            cand --proxy 'RDS Proxy name (exact match first, then case-insensitive)'
            cand --cluster 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)'
            cand --instance 'DB instance identifier'
            cand --host 'Endpoint host name, used as is (no RDS API call)'
            cand --port 'Port [default: the API''s port, else 5432; 3306 for MySQL]'
            cand --engine 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]'
            cand -U 'Database user, the role granted rds_iam [env: PGUSER]'
            cand --user 'Database user, the role granted rds_iam [env: PGUSER]'
            cand -d 'Database name [env: PGDATABASE]'
            cand --dbname 'Database name [env: PGDATABASE]'
            cand --region 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]'
            cand --profile 'AWS profile from ~/.aws/config [env: AWS_PROFILE]'
            cand --endpoint-url 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]'
            cand --api-timeout 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]'
            cand --via 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]'
            cand --sslmode 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS'
            cand --ca-bundle 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]'
            cand --connect-timeout 'Seconds to wait for TCP, TLS and login together [default: 10]'
            cand --failover-timeout 'Seconds a login for a writer target keeps retrying through a failover'
            cand --login-timeout 'Seconds the server may take to answer a login once TCP and TLS are up (a busy server is slow, not unreachable)'
            cand --max-connections 'Client connections COMMAND may open at once'
            cand --pool-size 'With --pool: idle sessions kept per user, database and parameters'
            cand --pool-idle-timeout 'With --pool: seconds a session may sit idle before it is closed'
            cand --pool-max-lifetime 'With --pool: seconds from a session''s login after which it is not reused (default under the 15-minute life of the token it logged in with)'
            cand --no-config 'Ignore the config file'
            cand --reader 'With --cluster: the cluster''s reader endpoint instead of the writer'
            cand --expect-writer 'Only a writer will do: a login that reaches a read-only server (or none) is retried until --failover-timeout (always so for --cluster without --reader)'
            cand --pool 'Keep the upstream session of a client that ended cleanly, reset with DISCARD ALL, for the next client with the same user, database and startup parameters (session pooling: saves a TLS + IAM login per client)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;man'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rdsiam;help'= {
            cand token 'Print a 15-minute IAM auth token for the target (the only command that prints one)'
            cand check 'Connect over verified TLS and show who you are (user, database, server, TLS, AWS identity)'
            cand psql 'Start psql with a fresh token in PGPASSWORD (never in argv); psql''s exit status is ours'
            cand mysql 'Start the mysql/mariadb client with a fresh token (never in argv), TLS verified; MySQL and MariaDB targets'
            cand sql 'A built-in SQL prompt over verified TLS; -c/-f/stdin run without a terminal'
            cand list 'List the RDS proxies, clusters and instances in the region, with IAM auth on or off'
            cand targets 'List the named targets in the config file, or show one with where each value comes from'
            cand doctor 'Find why an IAM login fails: credentials, identity and clock, target, policy, network, TLS, login, inside'
            cand policy 'Print the least-privilege IAM policy allowing rds-db:connect on the target for these users'
            cand proxy 'A local proxy: any PostgreSQL client logs in with IAM tokens it never sees, for hours'
            cand run 'Run one command with a private proxy (PGHOST etc. point at it) for as long as it runs'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff) to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rdsiam;help;token'= {
        }
        &'rdsiam;help;check'= {
        }
        &'rdsiam;help;psql'= {
        }
        &'rdsiam;help;mysql'= {
        }
        &'rdsiam;help;sql'= {
        }
        &'rdsiam;help;list'= {
        }
        &'rdsiam;help;targets'= {
            cand show 'Show a target''s resolved settings and where each value comes from'
            cand names 'Print the target names, one per line (used by shell completion)'
        }
        &'rdsiam;help;targets;show'= {
        }
        &'rdsiam;help;targets;names'= {
        }
        &'rdsiam;help;doctor'= {
        }
        &'rdsiam;help;policy'= {
        }
        &'rdsiam;help;proxy'= {
        }
        &'rdsiam;help;run'= {
        }
        &'rdsiam;help;completions'= {
        }
        &'rdsiam;help;man'= {
        }
        &'rdsiam;help;help'= {
        }
    ]
    $completions[$command]
}
