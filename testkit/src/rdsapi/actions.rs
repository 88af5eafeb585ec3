//! The answered actions: [`answer`] picks the handler by `Action`, and each handler selects,
//! filters and pages through the inventory as AWS does (`MaxRecords`/`Marker`, `Filters`, the
//! not-found faults), then writes its response document with the pieces in `xml`.

use std::collections::BTreeMap;

use super::inventory::{Cluster, Instance, Inventory, Proxy};
use super::xml::{RDS_XMLNS, STS_XMLNS, Xml, cluster_xml, instance_xml, proxy_xml};
use super::{ACCOUNT, ApiError, Params, REGION, api_error};

// AWS caps MaxRecords to 20..=100 and defaults to 100 for all three Describe calls.
const MAX_RECORDS_DEFAULT: usize = 100;
const MAX_RECORDS_RANGE: std::ops::RangeInclusive<i64> = 20..=100;

pub(super) fn answer(
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

fn invalid_parameter(message: impl Into<String>) -> ApiError {
    api_error(400, "InvalidParameterValue", message)
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
