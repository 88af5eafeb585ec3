# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_rdsiam_global_optspecs
    string join \n h/help V/version
end

function __fish_rdsiam_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_rdsiam_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_rdsiam_using_subcommand
    set -l cmd (__fish_rdsiam_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c rdsiam -n "__fish_rdsiam_needs_command" -s h -l help -d 'Print help'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "token" -d 'Print a 15-minute IAM auth token for the target (the only command that prints one)'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "check" -d 'Connect over verified TLS and show who you are (user, database, server, TLS, AWS identity)'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "psql" -d 'Start psql with a fresh token in PGPASSWORD (never in argv); psql\'s exit status is ours'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "mysql" -d 'Start the mysql/mariadb client with a fresh token (never in argv), TLS verified; MySQL and MariaDB targets'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "sql" -d 'A built-in SQL prompt over verified TLS; -c/-f/stdin run without a terminal'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "list" -d 'List the RDS proxies, clusters and instances in the region, with IAM auth on or off'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "targets" -d 'List the named targets in the config file, or show one with where each value comes from'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "doctor" -d 'Find why an IAM login fails: credentials, identity and clock, target, policy, network, TLS, login, inside'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "policy" -d 'Print the least-privilege IAM policy allowing rds-db:connect on the target for these users'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "proxy" -d 'A local proxy: any PostgreSQL client logs in with IAM tokens it never sees, for hours'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "run" -d 'Run one command with a private proxy (PGHOST etc. point at it) for as long as it runs'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "man" -d 'Print the man page (roff) to stdout'
complete -c rdsiam -n "__fish_rdsiam_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -s o -l output -d 'Output format' -r -f -a "text\t'The token alone'
json\t'token, host, port, user, region, expires_at'
env\t'`export PG…=` lines for eval (MySQL targets: `MYSQL_HOST`, `MYSQL_TCP_PORT`, `MYSQL_PWD`…)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand token" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l via -d 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l sslmode -d 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS' -r -f -a "verify-full\t'Verify the chain and that the certificate names the endpoint host'
verify-ca\t'Verify the chain only'
require\t'Encrypt without verifying (not recommended)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l ca-bundle -d 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l connect-timeout -d 'Seconds to wait for TCP, TLS and login together [default: 10]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l expect-user -d 'Fail with exit 6 unless the session\'s current_user is USER' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l expect-writer -d 'Fail with exit 6 unless the session is on the writer (not a read-only server)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l expect-reader -d 'Fail with exit 6 unless the session is on a reader (a hot standby)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -l no-aws-identity -d 'Skip the STS GetCallerIdentity call'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand check" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l via -d 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l sslmode -d 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS' -r -f -a "verify-full\t'Verify the chain and that the certificate names the endpoint host'
verify-ca\t'Verify the chain only'
require\t'Encrypt without verifying (not recommended)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l ca-bundle -d 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l connect-timeout -d 'Seconds to wait for TCP, TLS and login together [default: 10]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l psql -d 'The psql binary to run [default: psql on PATH] [env: RDSIAM_PSQL]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l print-env -d 'Show the environment psql would get (password masked) and exit'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -l long -d 'Run psql behind a private proxy, as `rdsiam run` does, so `\\c` and reconnects keep working after the first token\'s 15 minutes'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand psql" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l via -d 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l sslmode -d 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS' -r -f -a "verify-full\t'Verify the chain and that the certificate names the endpoint host'
verify-ca\t'Verify the chain only'
require\t'Encrypt without verifying (not recommended)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l ca-bundle -d 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l connect-timeout -d 'Seconds to wait for TCP, TLS and login together [default: 10]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l mysql -d 'The client to run [default: mysql on PATH, else mariadb] [env: RDSIAM_MYSQL]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand mysql" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l via -d 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l sslmode -d 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS' -r -f -a "verify-full\t'Verify the chain and that the certificate names the endpoint host'
verify-ca\t'Verify the chain only'
require\t'Encrypt without verifying (not recommended)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l ca-bundle -d 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l connect-timeout -d 'Seconds to wait for TCP, TLS and login together [default: 10]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -s c -l command -d 'Run this SQL and exit (repeatable; runs in order)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -s f -l file -d 'Run the SQL in FILE and exit' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -s o -l output -d 'Result format' -r -f -a "table\t'Tables sized to the terminal'
json\t'One array of objects per statement, typed values'
csv\t'RFC 4180'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -l continue-on-error -d 'Keep going after a failed statement (exit 1 at the end)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand sql" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand list" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand list" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand list" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand list" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand list" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand list" -s h -l help -d 'Print help'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand list" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and not __fish_seen_subcommand_from show names help" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and not __fish_seen_subcommand_from show names help" -s h -l help -d 'Print help'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and not __fish_seen_subcommand_from show names help" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and not __fish_seen_subcommand_from show names help" -f -a "show" -d 'Show a target\'s resolved settings and where each value comes from'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and not __fish_seen_subcommand_from show names help" -f -a "names" -d 'Print the target names, one per line (used by shell completion)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and not __fish_seen_subcommand_from show names help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from names" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from names" -s h -l help -d 'Print help'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from names" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a target\'s resolved settings and where each value comes from'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from help" -f -a "names" -d 'Print the target names, one per line (used by shell completion)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand targets; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l via -d 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l sslmode -d 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS' -r -f -a "verify-full\t'Verify the chain and that the certificate names the endpoint host'
verify-ca\t'Verify the chain only'
require\t'Encrypt without verifying (not recommended)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l ca-bundle -d 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l connect-timeout -d 'Seconds to wait for TCP, TLS and login together [default: 10]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -s o -l output -d 'Output format (json: a stable schema, see the README)' -r -f -a "text\t''
json\t''"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -l strict -d 'Treat a warning as a failure (exit 6)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l proxy -d 'RDS Proxy name' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l cluster -d 'Aurora cluster identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l host -d 'Refused with a clear message: a host name carries no resource id' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -s U -l user -d 'Database users the policy allows (repeatable) [default: the target\'s user, PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l account -d 'Account of the resource ARNs [default: from STS GetCallerIdentity]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -s o -l output -d 'Output format' -r -f -a "json\t'An IAM policy document, as `aws iam create-policy --policy-document` takes it'
terraform\t'`data "aws_iam_policy_document"` blocks'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l reader -d 'With --cluster: the reader endpoint (same policy as the writer)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l proxy-role -d 'For an end-to-end IAM proxy: print the policy its own role needs instead'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -l allow-policy-variables -d 'Let --user hold IAM policy variables such as `${aws:username}`, which IAM expands per caller (refused unless asked for)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand policy" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l via -d 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l sslmode -d 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS' -r -f -a "verify-full\t'Verify the chain and that the certificate names the endpoint host'
verify-ca\t'Verify the chain only'
require\t'Encrypt without verifying (not recommended)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l ca-bundle -d 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l connect-timeout -d 'Seconds to wait for TCP, TLS and login together [default: 10]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l listen -d 'TCP address for the first target (ports count up for more targets; `none`: no TCP). Anything but loopback lets whoever reaches it log in as you [default: 127.0.0.1:5432] [env: RDSIAM_LISTEN]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l unix-socket -d 'Also listen on DIR/.s.PGSQL.PORT (DIR made 0700 if missing), for `psql -h DIR -p PORT` [env: RDSIAM_UNIX_SOCKET]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l http-address -d 'Serve /startup, /liveness, /readiness and /metrics (Prometheus) on ADDR:PORT [default: off] [env: RDSIAM_HTTP_ADDRESS]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l max-connections -d 'Client connections open at once; more get FATAL 53300 [default: 1000] [env: RDSIAM_MAX_CONNECTIONS]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l max-connection-rate -d 'New upstream logins per second; more wait their turn (RDS throttles IAM logins at 200/s) [default: 100] [env: RDSIAM_MAX_CONNECTION_RATE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l min-sigterm-delay -d 'Seconds to keep accepting after SIGTERM, readiness failing, so load balancers and Services stop sending clients first [default: 0] [env: RDSIAM_MIN_SIGTERM_DELAY]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l max-sigterm-delay -d 'Seconds open connections get to finish after SIGTERM/SIGINT (a second signal ends at once) [default: 0] [env: RDSIAM_MAX_SIGTERM_DELAY]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l log-format -d 'Connection log format on stderr [default: text] [env: RDSIAM_LOG_FORMAT]' -r -f -a "text\t'`rdsiam: proxy: open conn=1 client=… user=…`'
json\t'One JSON object per line'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l wait -d 'Start nothing: wait up to SECS (default 30) for the proxy serving --http-address to be ready (GET /readiness is 200), then exit 0; 6 if it is not (for init scripts)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l allow-user -d 'Also admit this local account (repeatable); by default only yours may connect, since whoever connects logs in as you' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l pool-size -d 'With --pool: idle sessions kept per user, database and parameters' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l pool-idle-timeout -d 'With --pool: seconds a session may sit idle before it is closed' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l pool-max-lifetime -d 'With --pool: seconds from a session\'s login after which it is not reused (default under the 15-minute life of the token it logged in with)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l failover-timeout -d 'Seconds a login for a writer target keeps retrying through a failover' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l login-timeout -d 'Seconds the server may take to answer a login once TCP and TLS are up (a busy server is slow, not unreachable)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l quitquitquit -d 'Stop (drain, exit 0) on `POST /quitquitquit` to the --http-address: for a sidecar whose main container is done. Anyone who can reach that address can stop the proxy [env: RDSIAM_QUITQUITQUIT]'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l allow-any-local-user -d 'Admit every local account (needed for a non-loopback --listen): each logs in as you'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l pool -d 'Keep the upstream session of a client that ended cleanly, reset with DISCARD ALL, for the next client with the same user, database and startup parameters (session pooling: saves a TLS + IAM login per client)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -l expect-writer -d 'Only a writer will do: a login that reaches a read-only server (or none) is retried until --failover-timeout (always so for --cluster without --reader)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand proxy" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l proxy -d 'RDS Proxy name (exact match first, then case-insensitive)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l cluster -d 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l instance -d 'DB instance identifier' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l host -d 'Endpoint host name, used as is (no RDS API call)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l port -d 'Port [default: the API\'s port, else 5432; 3306 for MySQL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l engine -d 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]' -r -f -a "postgres\t'PostgreSQL, Aurora PostgreSQL'
mysql\t'MySQL, Aurora MySQL, MariaDB'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -s U -l user -d 'Database user, the role granted rds_iam [env: PGUSER]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -s d -l dbname -d 'Database name [env: PGDATABASE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l region -d 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile\'s]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l profile -d 'AWS profile from ~/.aws/config [env: AWS_PROFILE]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l endpoint-url -d 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l api-timeout -d 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l via -d 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l sslmode -d 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS' -r -f -a "verify-full\t'Verify the chain and that the certificate names the endpoint host'
verify-ca\t'Verify the chain only'
require\t'Encrypt without verifying (not recommended)'"
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l ca-bundle -d 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]' -r -F
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l connect-timeout -d 'Seconds to wait for TCP, TLS and login together [default: 10]' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l failover-timeout -d 'Seconds a login for a writer target keeps retrying through a failover' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l login-timeout -d 'Seconds the server may take to answer a login once TCP and TLS are up (a busy server is slow, not unreachable)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l max-connections -d 'Client connections COMMAND may open at once' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l pool-size -d 'With --pool: idle sessions kept per user, database and parameters' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l pool-idle-timeout -d 'With --pool: seconds a session may sit idle before it is closed' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l pool-max-lifetime -d 'With --pool: seconds from a session\'s login after which it is not reused (default under the 15-minute life of the token it logged in with)' -r
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l no-config -d 'Ignore the config file'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l reader -d 'With --cluster: the cluster\'s reader endpoint instead of the writer'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l expect-writer -d 'Only a writer will do: a login that reaches a read-only server (or none) is retried until --failover-timeout (always so for --cluster without --reader)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -l pool -d 'Keep the upstream session of a client that ended cleanly, reset with DISCARD ALL, for the next client with the same user, database and startup parameters (session pooling: saves a TLS + IAM login per client)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand run" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand completions" -s h -l help -d 'Print help'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand completions" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand man" -s h -l help -d 'Print help'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand man" -s V -l version -d 'Print version'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "token" -d 'Print a 15-minute IAM auth token for the target (the only command that prints one)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "check" -d 'Connect over verified TLS and show who you are (user, database, server, TLS, AWS identity)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "psql" -d 'Start psql with a fresh token in PGPASSWORD (never in argv); psql\'s exit status is ours'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "mysql" -d 'Start the mysql/mariadb client with a fresh token (never in argv), TLS verified; MySQL and MariaDB targets'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "sql" -d 'A built-in SQL prompt over verified TLS; -c/-f/stdin run without a terminal'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "list" -d 'List the RDS proxies, clusters and instances in the region, with IAM auth on or off'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "targets" -d 'List the named targets in the config file, or show one with where each value comes from'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "doctor" -d 'Find why an IAM login fails: credentials, identity and clock, target, policy, network, TLS, login, inside'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "policy" -d 'Print the least-privilege IAM policy allowing rds-db:connect on the target for these users'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "proxy" -d 'A local proxy: any PostgreSQL client logs in with IAM tokens it never sees, for hours'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "run" -d 'Run one command with a private proxy (PGHOST etc. point at it) for as long as it runs'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "completions" -d 'Print a shell completion script'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "man" -d 'Print the man page (roff) to stdout'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and not __fish_seen_subcommand_from token check psql mysql sql list targets doctor policy proxy run completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and __fish_seen_subcommand_from targets" -f -a "show" -d 'Show a target\'s resolved settings and where each value comes from'
complete -c rdsiam -n "__fish_rdsiam_using_subcommand help; and __fish_seen_subcommand_from targets" -f -a "names" -d 'Print the target names, one per line (used by shell completion)'
complete -c rdsiam -n "__fish_seen_subcommand_from token check psql sql" -f -a "(rdsiam targets names 2>/dev/null)" -d 'named target'
