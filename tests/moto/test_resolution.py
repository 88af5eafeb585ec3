"""Resolution tests for the real `rdsiam` binary against moto's RDS server.

The local RDS API in testkit/ is ours; moto is the emulator other people
already test with, so these tests check that rdsiam resolves proxies,
clusters and instances the way a second, independent implementation of the
RDS Query protocol describes them, and that its tokens are byte for byte the
ones botocore mints.

The world is the article's: an Aurora PostgreSQL cluster `databasecluster`
with IAM auth on and a writer instance, an RDS Proxy `PostgreSqlProxy`
requiring IAM and TLS, a standalone instance `legacy-reporting` with IAM off,
plus enough instances to force DescribeDBInstances past one page.

Run through tests/moto/run. Nothing here skips: no moto, no boto3 or no
binary is a failure.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import pytest

try:  # Missing packages fail every test (through the fixtures), never skip.
    import boto3
    import botocore.auth
    import moto  # noqa: F401  (moto_server comes with it)

    IMPORT_ERROR: Exception | None = None
except ImportError as err:  # pragma: no cover - exercised only when broken
    IMPORT_ERROR = err

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE/+=session token"
USER = "iamuserapp"

CLUSTER = "databasecluster"
WRITER = "databasecluster-instance-1"
PROXY = "PostgreSqlProxy"
LEGACY = "legacy-reporting"
# Instances beyond the article's, so that DescribeDBInstances (100 a page)
# needs a second page.
PADDING = [f"svc-{i:03d}" for i in range(120)]

IAM_OFF = "IAM database authentication is off"


# --------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def rdsiam_bin() -> Path:
    raw = os.environ.get("RDSIAM_BIN") or str(REPO / "target/debug/rdsiam")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"rdsiam binary not found at {path}: build it (cargo build) or set RDSIAM_BIN",
            pytrace=False,
        )
    return path


def _moto_server_exe() -> str:
    if IMPORT_ERROR is not None:
        pytest.fail(
            f"moto/boto3 not importable ({IMPORT_ERROR}); "
            "install tests/moto/requirements.txt (tests/moto/run does)",
            pytrace=False,
        )
    beside = Path(sys.executable).parent / "moto_server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("moto_server")
    if not found:
        pytest.fail(
            "moto_server not found (pip install 'moto[server]'; tests/moto/run does)",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory):
    """moto_server on a free loopback port, up for the whole session."""
    exe = _moto_server_exe()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"moto_server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}",
                    pytrace=False,
                )
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"moto_server did not answer on {url} within 60 s:\n"
                    f"{log_path.read_text()[-4000:]}",
                    pytrace=False,
                )
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(service: str, url: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture(scope="session")
def world(moto_url):
    """Seed moto with the article's world; return what boto3 sees of it."""
    rds = _client("rds", moto_url)
    ec2 = _client("ec2", moto_url)
    secrets = _client("secretsmanager", moto_url)

    rds.create_db_cluster(
        DBClusterIdentifier=CLUSTER,
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        MasterUsername="postgres",
        MasterUserPassword="not-used-by-anyone",
        EnableIAMDatabaseAuthentication=True,
    )
    rds.create_db_instance(
        DBInstanceIdentifier=WRITER,
        DBClusterIdentifier=CLUSTER,
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    rds.create_db_instance(
        DBInstanceIdentifier=LEGACY,
        Engine="postgres",
        EngineVersion="15.4",
        DBInstanceClass="db.t3.medium",
        AllocatedStorage=20,
        MasterUsername="postgres",
        MasterUserPassword="not-used-by-anyone",
        EnableIAMDatabaseAuthentication=False,
    )
    for name in PADDING:
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="postgres",
            MasterUserPassword="not-used-by-anyone",
            EnableIAMDatabaseAuthentication=True,
        )

    # RDS Proxy needs subnets of one VPC and a secret for the SECRETS scheme.
    # moto (5.2.x) requires Auth and ignores DefaultAuthScheme, so the
    # article's end-to-end IAM proxy (DefaultAuthScheme IAM_AUTH, no secret)
    # is modelled as the older form: a secret-based auth entry with IAMAuth
    # REQUIRED. rdsiam counts either as "IAM on".
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        for cidr, az in (("10.20.1.0/24", "us-east-1a"), ("10.20.2.0/24", "us-east-1b"))
    ]
    secret_arn = secrets.create_secret(
        Name="databasecluster-postgres",
        SecretString=json.dumps({"username": "postgres", "password": "not-used"}),
    )["ARN"]
    rds.create_db_proxy(
        DBProxyName=PROXY,
        EngineFamily="POSTGRESQL",
        Auth=[{"AuthScheme": "SECRETS", "IAMAuth": "REQUIRED", "SecretArn": secret_arn}],
        RoleArn="arn:aws:iam::123456789012:role/PostgreSqlProxyRole",
        VpcSubnetIds=subnets,
        RequireTLS=True,
    )

    first_page = rds.describe_db_instances()
    instances = [
        i
        for page in rds.get_paginator("describe_db_instances").paginate()
        for i in page["DBInstances"]
    ]
    clusters = [
        c
        for page in rds.get_paginator("describe_db_clusters").paginate()
        for c in page["DBClusters"]
    ]
    proxies = [
        p
        for page in rds.get_paginator("describe_db_proxies").paginate()
        for p in page["DBProxies"]
    ]
    return {
        "url": moto_url,
        "first_page_marker": first_page.get("Marker"),
        "first_page_len": len(first_page["DBInstances"]),
        "instances": {i["DBInstanceIdentifier"]: i for i in instances},
        "clusters": {c["DBClusterIdentifier"]: c for c in clusters},
        "proxies": {p["DBProxyName"]: p for p in proxies},
        "instance_count": len(instances),
    }


@pytest.fixture
def rdsiam(rdsiam_bin, world, tmp_path):
    """Run rdsiam hermetically: temp HOME, static credentials, no IMDS."""

    def run(*args, endpoint=True, extra_env=None, region=REGION):
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "AWS_CONFIG_FILE": str(home / ".aws/config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws/credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "RDSIAM_CONFIG": str(home / "no-such-rdsiam-config.toml"),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        env.update(extra_env or {})
        argv = [str(rdsiam_bin), *args]
        if region:
            argv += ["--region", region]
        if endpoint:
            argv += ["--endpoint-url", world["url"]]
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        assert "panicked" not in proc.stderr, proc.stderr
        assert "RUST_BACKTRACE" not in proc.stderr, proc.stderr
        return proc

    return run


def ok_json(proc) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return json.loads(proc.stdout)


TOKEN_RE = re.compile(
    r"^(?P<host>[^:/?&]+):(?P<port>\d+)/\?Action=connect&DBUser=(?P<user>[^&]+)"
    r"&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    r"&X-Amz-Credential=(?P<akid>[A-Z0-9]+)%2F(?P<day>\d{8})%2F(?P<region>[a-z0-9-]+)%2Frds-db%2Faws4_request"
    r"&X-Amz-Date=(?P<date>\d{8}T\d{6}Z)"
    r"&X-Amz-Expires=900"
    r"&X-Amz-SignedHeaders=host"
    r"(?:&X-Amz-Security-Token=(?P<sts>[A-Za-z0-9%._~-]+))?"
    r"&X-Amz-Signature=(?P<sig>[0-9a-f]{64})$"
)


def assert_token(token: str, host: str, port: int, user: str = USER) -> re.Match:
    prefix = f"{host}:{port}/?Action=connect&DBUser={user}&"
    assert token.startswith(prefix), f"{token!r} does not start with {prefix!r}"
    m = TOKEN_RE.match(token)
    assert m, f"malformed token: {token!r}"
    assert m["akid"] == ACCESS_KEY
    assert m["region"] == REGION
    assert m["day"] == m["date"][:8]
    return m


# ------------------------------------------------------------------ tests


def test_moto_paginates_instances(world):
    """The premise of the pagination tests: one page is not everything."""
    assert world["instance_count"] == len(PADDING) + 2
    assert world["first_page_len"] == 100
    assert world["first_page_marker"], "moto returned no Marker past 100 instances"


@pytest.mark.parametrize("name", [PROXY, PROXY.lower(), PROXY.upper()])
def test_proxy_resolves_by_exact_and_case_insensitive_name(rdsiam, world, name):
    proxy = world["proxies"][PROXY]
    out = ok_json(rdsiam("token", "--proxy", name, "-U", USER, "-o", "json"))
    assert out["host"] == proxy["Endpoint"]
    assert out["port"] == 5432  # DescribeDBProxies has no port; POSTGRESQL's
    assert out["user"] == USER
    assert out["region"] == REGION
    assert_token(out["token"], proxy["Endpoint"], 5432)


def test_proxy_port_flag_overrides(rdsiam, world):
    proxy = world["proxies"][PROXY]
    out = ok_json(rdsiam("token", "--proxy", PROXY, "--port", "6432", "-U", USER, "-o", "json"))
    assert out["port"] == 6432
    assert_token(out["token"], proxy["Endpoint"], 6432)


def test_proxy_with_iam_required_does_not_warn(rdsiam):
    proc = rdsiam("token", "--proxy", PROXY, "-U", USER)
    assert proc.returncode == 0, proc.stderr
    assert IAM_OFF not in proc.stderr


def test_proxy_text_output_is_the_token_alone(rdsiam, world):
    proc = rdsiam("token", "--proxy", PROXY, "-U", USER)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert_token(lines[0], world["proxies"][PROXY]["Endpoint"], 5432)


@pytest.mark.parametrize("reader", [False, True], ids=["writer", "reader"])
def test_cluster_endpoints_match_describe_db_clusters(rdsiam, world, reader):
    cluster = world["clusters"][CLUSTER]
    args = ["token", "--cluster", CLUSTER, "-U", USER, "-o", "json"]
    if reader:
        args.append("--reader")
    proc = rdsiam(*args)
    out = ok_json(proc)
    want = cluster["ReaderEndpoint"] if reader else cluster["Endpoint"]
    assert out["host"] == want
    assert out["port"] == cluster["Port"]
    assert_token(out["token"], want, cluster["Port"])
    assert IAM_OFF not in proc.stderr


@pytest.mark.parametrize("ident", ["svc-007", "svc-119"], ids=["first-page", "second-page"])
def test_instance_resolves(rdsiam, world, ident):
    inst = world["instances"][ident]
    proc = rdsiam("token", "--instance", ident, "-U", USER, "-o", "json")
    out = ok_json(proc)
    assert out["host"] == inst["Endpoint"]["Address"]
    assert out["port"] == inst["Endpoint"]["Port"]
    assert_token(out["token"], inst["Endpoint"]["Address"], inst["Endpoint"]["Port"])
    assert IAM_OFF not in proc.stderr


def test_cluster_member_instance_resolves(rdsiam, world):
    # moto reports IAMDatabaseAuthenticationEnabled=false on Aurora member
    # instances even when the cluster has it on (real RDS mirrors the
    # cluster's setting), so only where it points is checked here.
    inst = world["instances"][WRITER]
    out = ok_json(rdsiam("token", "--instance", WRITER, "-U", USER, "-o", "json"))
    assert out["host"] == inst["Endpoint"]["Address"]
    assert out["port"] == inst["Endpoint"]["Port"]


def test_iam_off_instance_warns_and_still_prints_a_token(rdsiam, world):
    inst = world["instances"][LEGACY]
    assert inst["IAMDatabaseAuthenticationEnabled"] is False
    proc = rdsiam("token", "--instance", LEGACY, "-U", USER)
    assert proc.returncode == 0, proc.stderr
    assert IAM_OFF in proc.stderr
    assert proc.stderr.startswith("rdsiam: "), proc.stderr
    assert_token(proc.stdout.strip(), inst["Endpoint"]["Address"], inst["Endpoint"]["Port"])


@pytest.mark.parametrize(
    "flag,typed,suggested",
    [
        ("--proxy", "PostgresSqlProxy", PROXY),
        ("--proxy", "postgressqlproxy", PROXY),
        ("--cluster", "databasecluter", CLUSTER),
        ("--instance", "legacy-reportng", LEGACY),
        # svc-119 is on DescribeDBInstances' second page.
        ("--instance", "svc-1199", "svc-119"),
    ],
)
def test_unknown_names_exit_3_with_did_you_mean(rdsiam, flag, typed, suggested):
    proc = rdsiam("token", flag, typed, "-U", USER)
    what = flag.lstrip("-")
    assert proc.returncode == 3, f"exit {proc.returncode}\nstderr: {proc.stderr}"
    assert proc.stdout == ""
    assert proc.stderr.startswith("rdsiam: "), proc.stderr
    assert f"no {what} named `{typed}`" in proc.stderr
    assert "did you mean" in proc.stderr
    assert f"`{flag} {suggested}`" in proc.stderr


def test_unknown_name_with_nothing_close_exits_3(rdsiam):
    proc = rdsiam("token", "--proxy", "zzzz", "-U", USER)
    assert proc.returncode == 3, proc.stderr
    assert "no proxy named `zzzz`" in proc.stderr


def test_wrong_region_does_not_find_the_proxy(rdsiam):
    # moto keeps one backend per region (taken from the SigV4 scope), like
    # RDS: the proxy exists in us-east-1 only.
    proc = rdsiam("token", "--proxy", PROXY, "-U", USER, region="us-west-2")
    assert proc.returncode == 3, proc.stderr
    assert f"no proxy named `{PROXY}`" in proc.stderr


def test_endpoint_url_from_environment(rdsiam, world):
    proc = rdsiam(
        "token", "--proxy", PROXY, "-U", USER, "-o", "json",
        endpoint=False, extra_env={"AWS_ENDPOINT_URL_RDS": world["url"]},
    )
    assert ok_json(proc)["host"] == world["proxies"][PROXY]["Endpoint"]


def test_list_json_has_every_resource_past_one_page(rdsiam, world):
    rows = ok_json(rdsiam("list", "-o", "json"))
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)

    assert set(by_kind) == {"proxy", "cluster-writer", "instance"}
    assert len(by_kind["instance"]) == world["instance_count"] > 100
    assert {r["name"] for r in by_kind["instance"]} == set(world["instances"])
    assert {r["name"] for r in by_kind["cluster-writer"]} == set(world["clusters"])
    assert {r["name"] for r in by_kind["proxy"]} == set(world["proxies"])
    assert len(rows) == world["instance_count"] + len(world["clusters"]) + len(world["proxies"])

    rows_by = {(r["kind"], r["name"]): r for r in rows}

    proxy, p = world["proxies"][PROXY], rows_by[("proxy", PROXY)]
    assert p["host"] == proxy["Endpoint"]
    assert p["port"] == 5432
    assert p["engine"] == "POSTGRESQL"
    assert p["iam"] is True
    assert p["require_tls"] is True
    assert p["arn"] == proxy["DBProxyArn"]
    assert p["resource_id"] == proxy["DBProxyArn"].rsplit(":", 1)[1]
    assert p["resource_id"].startswith("prx-")

    cluster, c = world["clusters"][CLUSTER], rows_by[("cluster-writer", CLUSTER)]
    assert c["host"] == cluster["Endpoint"]
    assert c["port"] == cluster["Port"]
    assert c["engine"] == "aurora-postgresql"
    assert c["iam"] is True
    assert c["resource_id"] == cluster["DbClusterResourceId"]
    assert c["arn"] == cluster["DBClusterArn"]

    for name, inst in world["instances"].items():
        row = rows_by[("instance", name)]
        assert row["host"] == inst["Endpoint"]["Address"], name
        assert row["port"] == inst["Endpoint"]["Port"], name
        assert row["iam"] is inst["IAMDatabaseAuthenticationEnabled"], name
        assert row["resource_id"] == inst["DbiResourceId"], name
        assert row["arn"] == inst["DBInstanceArn"], name
    assert rows_by[("instance", LEGACY)]["iam"] is False


def test_list_table_names_everything(rdsiam):
    proc = rdsiam("list")
    assert proc.returncode == 0, proc.stderr
    for name in (PROXY, CLUSTER, LEGACY, "svc-000", "svc-119"):
        assert name in proc.stdout


def _botocore_token(host: str, port: int, user: str, amz_date: str, session_token=None) -> str:
    """botocore's generate_db_auth_token, with the clock stopped at amz_date."""
    instant = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")  # naive UTC, as botocore's
    client = boto3.session.Session().client(
        "rds",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=session_token,
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: instant):
        return client.generate_db_auth_token(
            DBHostname=host, Port=port, DBUsername=user, Region=REGION
        )


@pytest.mark.parametrize(
    "target,session_token",
    [
        (("--proxy", PROXY), None),
        (("--proxy", PROXY.lower()), SESSION_TOKEN),
        (("--cluster", CLUSTER), None),
        (("--cluster", CLUSTER, "--reader", "--port", "6543"), None),
        (("--instance", LEGACY), SESSION_TOKEN),
    ],
    ids=["proxy", "proxy-session-token", "cluster", "reader-port", "instance-session-token"],
)
def test_token_matches_botocore_byte_for_byte(rdsiam, target, session_token):
    extra = {"AWS_SESSION_TOKEN": session_token} if session_token else None
    out = ok_json(rdsiam("token", *target, "-U", USER, "-o", "json", extra_env=extra))
    m = assert_token(out["token"], out["host"], out["port"])
    assert (m["sts"] is not None) == (session_token is not None)
    want = _botocore_token(out["host"], out["port"], USER, m["date"], session_token)
    assert out["token"] == want


def test_expiry_is_fifteen_minutes_after_signing(rdsiam):
    out = ok_json(rdsiam("token", "--proxy", PROXY, "-U", USER, "-o", "json"))
    m = assert_token(out["token"], out["host"], out["port"])
    signed = datetime.datetime.strptime(m["date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    expires = out["expires_at"]
    if isinstance(expires, (int, float)):
        expires_dt = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
    else:
        expires_dt = datetime.datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
    # AWS counts the 900 s from X-Amz-Date (whole seconds). rdsiam currently
    # reports the unrounded signing instant + 900 s, so allow the fraction.
    lived = expires_dt - signed
    assert datetime.timedelta(seconds=900) <= lived < datetime.timedelta(seconds=901), lived
