//! A test certificate authority, made fresh at start-up.
//!
//! Tests need TLS that is real (clients verify chains and host names exactly as they would against
//! RDS) but must not depend on any certificate shipped in the repo or on the network. So each run
//! makes its own CA with rcgen and issues leaf certificates from it on demand. A second
//! `TestCa::new()` is an unrelated CA, which is how the "wrong certificate" faults are built.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use sha2::{Digest, Sha256};

/// A self-signed CA that can issue server certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    // Deliberately omits the key: nothing in a test log should look like key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// Makes a new CA with a fresh key; two calls give two unrelated CAs.
    pub fn new() -> Result<TestCa> {
        let key = KeyPair::generate().context("generating the test CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        // A name unique to this key: an unrelated CA with the same name would make verifiers
        // report a bad signature instead of the unknown issuer a real wrong CA gives.
        let tag = hex::encode(&Sha256::digest(key.public_key_raw())[..6]);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rdsiam test CA {tag}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "rdsiam testkit");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // Fixed, generous validity: the gate's clock offset moves token time, not TLS time, and a
        // window that covers any plausible machine clock keeps TLS out of expiry tests.
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2099, 1, 1);
        let issuer =
            CertifiedIssuer::self_signed(params, key).context("self-signing the test CA")?;
        Ok(TestCa { issuer })
    }

    /// The CA certificate in PEM, for clients to trust.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate (PEM) to `path`, e.g. for `sslrootcert=`.
    pub fn write_ca(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.ca_pem())
            .with_context(|| format!("writing the test CA to {}", path.display()))
    }

    /// Issues a server certificate for `sans` and returns `(cert_pem, key_pem)`.
    ///
    /// Entries that parse as IP addresses become IP SANs, the rest DNS SANs; the first entry is
    /// also the subject CN, for tools that still print it.
    pub fn issue(&self, sans: &[&str]) -> Result<(String, String)> {
        self.issue_not_after(sans, Until::Date((2099, 1, 1)))
    }

    /// Like [`TestCa::issue`], but valid only from 2020 to the end of 2021: expired.
    pub fn issue_expired(&self, sans: &[&str]) -> Result<(String, String)> {
        self.issue_not_after(sans, Until::Date((2021, 12, 31)))
    }

    /// Like [`TestCa::issue`], but the certificate expires `valid_for` from now, for tests of
    /// expiry warnings such as "expires in 10 days".
    pub fn issue_expiring_in(
        &self,
        sans: &[&str],
        valid_for: std::time::Duration,
    ) -> Result<(String, String)> {
        self.issue_not_after(sans, Until::In(valid_for))
    }

    /// A leaf valid from 2020-01-01 until `not_after`.
    fn issue_not_after(&self, sans: &[&str], not_after: Until) -> Result<(String, String)> {
        let key = KeyPair::generate().context("generating a leaf key")?;
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names)
            .with_context(|| format!("building certificate parameters for {sans:?}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = sans.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = match not_after {
            Until::Date((y, m, d)) => date_time_ymd(y, m, d),
            Until::In(valid_for) => {
                let since_epoch = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .context("the system clock is before 1970")?;
                date_time_ymd(1970, 1, 1) + since_epoch + valid_for
            }
        };
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("issuing a certificate for {sans:?}"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// When a leaf stops being valid: a calendar date, or a span from now.
enum Until {
    Date((i32, u8, u8)),
    In(std::time::Duration),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    #[test]
    fn issues_ip_and_dns_sans_that_verify_against_the_ca() {
        let ca = TestCa::new().unwrap();
        let (cert_pem, key_pem) = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key_pem.contains("PRIVATE KEY"));

        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let now = rustls::pki_types::UnixTime::now();
        for name in ["localhost", "127.0.0.1"] {
            let sn = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&leaf, &[], &sn, &[], now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("example.com").unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], now)
                .is_err()
        );

        // An unrelated CA must not vouch for this leaf.
        let stranger = TestCa::new().unwrap();
        assert_ne!(stranger.ca_pem(), ca.ca_pem());
    }
}
