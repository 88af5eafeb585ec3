
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'rdsiam' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'rdsiam'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'rdsiam' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print a 15-minute IAM auth token for the target (the only command that prints one)')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Connect over verified TLS and show who you are (user, database, server, TLS, AWS identity)')
            [CompletionResult]::new('psql', 'psql', [CompletionResultType]::ParameterValue, 'Start psql with a fresh token in PGPASSWORD (never in argv); psql''s exit status is ours')
            [CompletionResult]::new('mysql', 'mysql', [CompletionResultType]::ParameterValue, 'Start the mysql/mariadb client with a fresh token (never in argv), TLS verified; MySQL and MariaDB targets')
            [CompletionResult]::new('sql', 'sql', [CompletionResultType]::ParameterValue, 'A built-in SQL prompt over verified TLS; -c/-f/stdin run without a terminal')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the RDS proxies, clusters and instances in the region, with IAM auth on or off')
            [CompletionResult]::new('targets', 'targets', [CompletionResultType]::ParameterValue, 'List the named targets in the config file, or show one with where each value comes from')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Find why an IAM login fails: credentials, identity and clock, target, policy, network, TLS, login, inside')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Print the least-privilege IAM policy allowing rds-db:connect on the target for these users')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'A local proxy: any PostgreSQL client logs in with IAM tokens it never sees, for hours')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run one command with a private proxy (PGHOST etc. point at it) for as long as it runs')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff) to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdsiam;token' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;check' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]')
            [CompletionResult]::new('--sslmode', '--sslmode', [CompletionResultType]::ParameterName, 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for TCP, TLS and login together [default: 10]')
            [CompletionResult]::new('--expect-user', '--expect-user', [CompletionResultType]::ParameterName, 'Fail with exit 6 unless the session''s current_user is USER')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('--expect-writer', '--expect-writer', [CompletionResultType]::ParameterName, 'Fail with exit 6 unless the session is on the writer (not a read-only server)')
            [CompletionResult]::new('--expect-reader', '--expect-reader', [CompletionResultType]::ParameterName, 'Fail with exit 6 unless the session is on a reader (a hot standby)')
            [CompletionResult]::new('--no-aws-identity', '--no-aws-identity', [CompletionResultType]::ParameterName, 'Skip the STS GetCallerIdentity call')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;psql' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]')
            [CompletionResult]::new('--sslmode', '--sslmode', [CompletionResultType]::ParameterName, 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for TCP, TLS and login together [default: 10]')
            [CompletionResult]::new('--psql', '--psql', [CompletionResultType]::ParameterName, 'The psql binary to run [default: psql on PATH] [env: RDSIAM_PSQL]')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('--print-env', '--print-env', [CompletionResultType]::ParameterName, 'Show the environment psql would get (password masked) and exit')
            [CompletionResult]::new('--long', '--long', [CompletionResultType]::ParameterName, 'Run psql behind a private proxy, as `rdsiam run` does, so `\c` and reconnects keep working after the first token''s 15 minutes')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;mysql' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]')
            [CompletionResult]::new('--sslmode', '--sslmode', [CompletionResultType]::ParameterName, 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for TCP, TLS and login together [default: 10]')
            [CompletionResult]::new('--mysql', '--mysql', [CompletionResultType]::ParameterName, 'The client to run [default: mysql on PATH, else mariadb] [env: RDSIAM_MYSQL]')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;sql' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]')
            [CompletionResult]::new('--sslmode', '--sslmode', [CompletionResultType]::ParameterName, 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for TCP, TLS and login together [default: 10]')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Run this SQL and exit (repeatable; runs in order)')
            [CompletionResult]::new('--command', '--command', [CompletionResultType]::ParameterName, 'Run this SQL and exit (repeatable; runs in order)')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Run the SQL in FILE and exit')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Run the SQL in FILE and exit')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Result format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Result format')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('--continue-on-error', '--continue-on-error', [CompletionResultType]::ParameterName, 'Keep going after a failed statement (exit 1 at the end)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;list' {
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;targets' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a target''s resolved settings and where each value comes from')
            [CompletionResult]::new('names', 'names', [CompletionResultType]::ParameterValue, 'Print the target names, one per line (used by shell completion)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdsiam;targets;show' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;targets;names' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;targets;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a target''s resolved settings and where each value comes from')
            [CompletionResult]::new('names', 'names', [CompletionResultType]::ParameterValue, 'Print the target names, one per line (used by shell completion)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdsiam;targets;help;show' {
            break
        }
        'rdsiam;targets;help;names' {
            break
        }
        'rdsiam;targets;help;help' {
            break
        }
        'rdsiam;doctor' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]')
            [CompletionResult]::new('--sslmode', '--sslmode', [CompletionResultType]::ParameterName, 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for TCP, TLS and login together [default: 10]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (json: a stable schema, see the README)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (json: a stable schema, see the README)')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Treat a warning as a failure (exit 6)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;policy' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Refused with a clear message: a host name carries no resource id')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database users the policy allows (repeatable) [default: the target''s user, PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database users the policy allows (repeatable) [default: the target''s user, PGUSER]')
            [CompletionResult]::new('--account', '--account', [CompletionResultType]::ParameterName, 'Account of the resource ARNs [default: from STS GetCallerIdentity]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the reader endpoint (same policy as the writer)')
            [CompletionResult]::new('--proxy-role', '--proxy-role', [CompletionResultType]::ParameterName, 'For an end-to-end IAM proxy: print the policy its own role needs instead')
            [CompletionResult]::new('--allow-policy-variables', '--allow-policy-variables', [CompletionResultType]::ParameterName, 'Let --user hold IAM policy variables such as `${aws:username}`, which IAM expands per caller (refused unless asked for)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;proxy' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]')
            [CompletionResult]::new('--sslmode', '--sslmode', [CompletionResultType]::ParameterName, 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for TCP, TLS and login together [default: 10]')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'TCP address for the first target (ports count up for more targets; `none`: no TCP). Anything but loopback lets whoever reaches it log in as you [default: 127.0.0.1:5432] [env: RDSIAM_LISTEN]')
            [CompletionResult]::new('--unix-socket', '--unix-socket', [CompletionResultType]::ParameterName, 'Also listen on DIR/.s.PGSQL.PORT (DIR made 0700 if missing), for `psql -h DIR -p PORT` [env: RDSIAM_UNIX_SOCKET]')
            [CompletionResult]::new('--http-address', '--http-address', [CompletionResultType]::ParameterName, 'Serve /startup, /liveness, /readiness and /metrics (Prometheus) on ADDR:PORT [default: off] [env: RDSIAM_HTTP_ADDRESS]')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Client connections open at once; more get FATAL 53300 [default: 1000] [env: RDSIAM_MAX_CONNECTIONS]')
            [CompletionResult]::new('--max-connection-rate', '--max-connection-rate', [CompletionResultType]::ParameterName, 'New upstream logins per second; more wait their turn (RDS throttles IAM logins at 200/s) [default: 100] [env: RDSIAM_MAX_CONNECTION_RATE]')
            [CompletionResult]::new('--min-sigterm-delay', '--min-sigterm-delay', [CompletionResultType]::ParameterName, 'Seconds to keep accepting after SIGTERM, readiness failing, so load balancers and Services stop sending clients first [default: 0] [env: RDSIAM_MIN_SIGTERM_DELAY]')
            [CompletionResult]::new('--max-sigterm-delay', '--max-sigterm-delay', [CompletionResultType]::ParameterName, 'Seconds open connections get to finish after SIGTERM/SIGINT (a second signal ends at once) [default: 0] [env: RDSIAM_MAX_SIGTERM_DELAY]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Connection log format on stderr [default: text] [env: RDSIAM_LOG_FORMAT]')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Start nothing: wait up to SECS (default 30) for the proxy serving --http-address to be ready (GET /readiness is 200), then exit 0; 6 if it is not (for init scripts)')
            [CompletionResult]::new('--allow-user', '--allow-user', [CompletionResultType]::ParameterName, 'Also admit this local account (repeatable); by default only yours may connect, since whoever connects logs in as you')
            [CompletionResult]::new('--pool-size', '--pool-size', [CompletionResultType]::ParameterName, 'With --pool: idle sessions kept per user, database and parameters')
            [CompletionResult]::new('--pool-idle-timeout', '--pool-idle-timeout', [CompletionResultType]::ParameterName, 'With --pool: seconds a session may sit idle before it is closed')
            [CompletionResult]::new('--pool-max-lifetime', '--pool-max-lifetime', [CompletionResultType]::ParameterName, 'With --pool: seconds from a session''s login after which it is not reused (default under the 15-minute life of the token it logged in with)')
            [CompletionResult]::new('--failover-timeout', '--failover-timeout', [CompletionResultType]::ParameterName, 'Seconds a login for a writer target keeps retrying through a failover')
            [CompletionResult]::new('--login-timeout', '--login-timeout', [CompletionResultType]::ParameterName, 'Seconds the server may take to answer a login once TCP and TLS are up (a busy server is slow, not unreachable)')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('--quitquitquit', '--quitquitquit', [CompletionResultType]::ParameterName, 'Stop (drain, exit 0) on `POST /quitquitquit` to the --http-address: for a sidecar whose main container is done. Anyone who can reach that address can stop the proxy [env: RDSIAM_QUITQUITQUIT]')
            [CompletionResult]::new('--allow-any-local-user', '--allow-any-local-user', [CompletionResultType]::ParameterName, 'Admit every local account (needed for a non-loopback --listen): each logs in as you')
            [CompletionResult]::new('--pool', '--pool', [CompletionResultType]::ParameterName, 'Keep the upstream session of a client that ended cleanly, reset with DISCARD ALL, for the next client with the same user, database and startup parameters (session pooling: saves a TLS + IAM login per client)')
            [CompletionResult]::new('--expect-writer', '--expect-writer', [CompletionResultType]::ParameterName, 'Only a writer will do: a login that reaches a read-only server (or none) is retried until --failover-timeout (always so for --cluster without --reader)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;run' {
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'RDS Proxy name (exact match first, then case-insensitive)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Aurora cluster identifier (its writer endpoint; add --reader for the reader endpoint)')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'DB instance identifier')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Endpoint host name, used as is (no RDS API call)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port [default: the API''s port, else 5432; 3306 for MySQL]')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The engine of a --host endpoint (others learn it from the RDS API) [default: postgres]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Database user, the role granted rds_iam [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database name [env: PGDATABASE]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile''s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'AWS profile from ~/.aws/config [env: AWS_PROFILE]')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'RDS API endpoint URL [env: AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--api-timeout', '--api-timeout', [CompletionResultType]::ParameterName, 'Seconds each AWS API call (retries included) and each credentials lookup (credential_process, SSO, assume-role) may take [default: 15] [env: RDSIAM_API_TIMEOUT]')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'Open the TCP connection to ADDR:PORT (an SSM port forward, an SSH tunnel); the token and TLS still name the real endpoint [env: RDSIAM_VIA]')
            [CompletionResult]::new('--sslmode', '--sslmode', [CompletionResultType]::ParameterName, 'TLS verification [default: verify-full]; the token is a cleartext password, so there is no mode without TLS')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'PEM file of trusted roots, replacing the built-in RDS + Amazon bundle (`system`: the built-in bundle and the system store) [env: PGSSLROOTCERT]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for TCP, TLS and login together [default: 10]')
            [CompletionResult]::new('--failover-timeout', '--failover-timeout', [CompletionResultType]::ParameterName, 'Seconds a login for a writer target keeps retrying through a failover')
            [CompletionResult]::new('--login-timeout', '--login-timeout', [CompletionResultType]::ParameterName, 'Seconds the server may take to answer a login once TCP and TLS are up (a busy server is slow, not unreachable)')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Client connections COMMAND may open at once')
            [CompletionResult]::new('--pool-size', '--pool-size', [CompletionResultType]::ParameterName, 'With --pool: idle sessions kept per user, database and parameters')
            [CompletionResult]::new('--pool-idle-timeout', '--pool-idle-timeout', [CompletionResultType]::ParameterName, 'With --pool: seconds a session may sit idle before it is closed')
            [CompletionResult]::new('--pool-max-lifetime', '--pool-max-lifetime', [CompletionResultType]::ParameterName, 'With --pool: seconds from a session''s login after which it is not reused (default under the 15-minute life of the token it logged in with)')
            [CompletionResult]::new('--no-config', '--no-config', [CompletionResultType]::ParameterName, 'Ignore the config file')
            [CompletionResult]::new('--reader', '--reader', [CompletionResultType]::ParameterName, 'With --cluster: the cluster''s reader endpoint instead of the writer')
            [CompletionResult]::new('--expect-writer', '--expect-writer', [CompletionResultType]::ParameterName, 'Only a writer will do: a login that reaches a read-only server (or none) is retried until --failover-timeout (always so for --cluster without --reader)')
            [CompletionResult]::new('--pool', '--pool', [CompletionResultType]::ParameterName, 'Keep the upstream session of a client that ended cleanly, reset with DISCARD ALL, for the next client with the same user, database and startup parameters (session pooling: saves a TLS + IAM login per client)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;man' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rdsiam;help' {
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print a 15-minute IAM auth token for the target (the only command that prints one)')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Connect over verified TLS and show who you are (user, database, server, TLS, AWS identity)')
            [CompletionResult]::new('psql', 'psql', [CompletionResultType]::ParameterValue, 'Start psql with a fresh token in PGPASSWORD (never in argv); psql''s exit status is ours')
            [CompletionResult]::new('mysql', 'mysql', [CompletionResultType]::ParameterValue, 'Start the mysql/mariadb client with a fresh token (never in argv), TLS verified; MySQL and MariaDB targets')
            [CompletionResult]::new('sql', 'sql', [CompletionResultType]::ParameterValue, 'A built-in SQL prompt over verified TLS; -c/-f/stdin run without a terminal')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the RDS proxies, clusters and instances in the region, with IAM auth on or off')
            [CompletionResult]::new('targets', 'targets', [CompletionResultType]::ParameterValue, 'List the named targets in the config file, or show one with where each value comes from')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Find why an IAM login fails: credentials, identity and clock, target, policy, network, TLS, login, inside')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Print the least-privilege IAM policy allowing rds-db:connect on the target for these users')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'A local proxy: any PostgreSQL client logs in with IAM tokens it never sees, for hours')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run one command with a private proxy (PGHOST etc. point at it) for as long as it runs')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff) to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rdsiam;help;token' {
            break
        }
        'rdsiam;help;check' {
            break
        }
        'rdsiam;help;psql' {
            break
        }
        'rdsiam;help;mysql' {
            break
        }
        'rdsiam;help;sql' {
            break
        }
        'rdsiam;help;list' {
            break
        }
        'rdsiam;help;targets' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a target''s resolved settings and where each value comes from')
            [CompletionResult]::new('names', 'names', [CompletionResultType]::ParameterValue, 'Print the target names, one per line (used by shell completion)')
            break
        }
        'rdsiam;help;targets;show' {
            break
        }
        'rdsiam;help;targets;names' {
            break
        }
        'rdsiam;help;doctor' {
            break
        }
        'rdsiam;help;policy' {
            break
        }
        'rdsiam;help;proxy' {
            break
        }
        'rdsiam;help;run' {
            break
        }
        'rdsiam;help;completions' {
            break
        }
        'rdsiam;help;man' {
            break
        }
        'rdsiam;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
