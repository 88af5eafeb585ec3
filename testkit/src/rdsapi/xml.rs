//! The XML of the answers: a minimal writer, the Query protocol's error document, and how a
//! proxy, cluster and instance are written (the element names and order aws-sdk-rds's generated
//! deserializers expect). The actions in `actions` put these pieces together per response.

use std::fmt::Write as _;

use super::inventory::{Cluster, Instance, Inventory, Proxy, stable_hex};
use super::{ACCOUNT, REGION};

pub(super) const RDS_XMLNS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
pub(super) const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
// Route 53 zone RDS uses for us-east-1 endpoints; the SDK only passes it through.
const HOSTED_ZONE_ID: &str = "Z2R2ITUGPM61AM";
// A fixed instant keeps responses byte-stable between runs.
const CREATED: &str = "2024-05-01T12:00:00.000Z";

pub(super) fn proxy_xml(x: &mut Xml, p: &Proxy) {
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

pub(super) fn cluster_xml(x: &mut Xml, c: &Cluster, inv: &Inventory) {
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

pub(super) fn instance_xml(x: &mut Xml, i: &Instance) {
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

pub(super) fn error_xml(
    xmlns: &str,
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> String {
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
pub(super) struct Xml(pub(super) String);

impl Xml {
    pub(super) fn open(&mut self, tag: &str) {
        let _ = write!(self.0, "<{tag}>");
    }

    pub(super) fn open_ns(&mut self, tag: &str, xmlns: &str) {
        let _ = write!(self.0, "<{tag} xmlns=\"{}\">", escape(xmlns));
    }

    pub(super) fn close(&mut self, tag: &str) {
        let _ = write!(self.0, "</{tag}>");
    }

    pub(super) fn leaf(&mut self, tag: &str, value: &str) {
        let _ = write!(self.0, "<{tag}>{}</{tag}>", escape(value));
    }

    /// Omits the element when `value` is empty, as AWS omits absent members.
    pub(super) fn leaf_opt(&mut self, tag: &str, value: &str) {
        if !value.is_empty() {
            self.leaf(tag, value);
        }
    }

    pub(super) fn response_metadata(&mut self, request_id: &str) {
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
