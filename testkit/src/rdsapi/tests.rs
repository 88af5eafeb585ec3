//! The fake API end to end over TCP: raw HTTP requests checked element by element, the faults,
//! the connection handling, and the real consumer, the AWS SDK, parsing what the server writes.
//! The calendar maths has its own unit test in `sigv4`.

use super::http::http_date;
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
        .write_all(
            b"7\r\nAction=\r\n1a;ext=1\r\nDescribeDBProxies&MaxRecor\r\n6\r\nds=100\r\n0\r\n\r\n",
        )
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
