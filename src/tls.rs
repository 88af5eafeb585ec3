//! TLS for database connections: rustls, with libpq's three verifying modes.
//!
//! Why rustls and not postgres-native-tls: native-tls links libssl and
//! libcrypto dynamically, whose relocations cost every invocation about a
//! millisecond (even `rdsiam token`, which never opens TLS), it loads the
//! system store twice per connector, and it makes `libssl-dev` a build
//! requirement. The AWS SDK already brings rustls with aws-lc, so one TLS
//! stack serves both.
//!
//! Trust: the built-in bundle (RDS CAs and the Amazon roots) first; the
//! system store is read only when the bundle does not vouch for a chain, so
//! reaching RDS never pays for parsing every system root.

use std::sync::{Arc, OnceLock};

use anyhow::Result;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::ca::Roots;
use crate::error::Failure;

/// libpq's verifying sslmodes (there is no mode without TLS: the token is
/// a cleartext password). The command line maps its flag onto this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Verify the chain and that the certificate names the endpoint host
    #[default]
    VerifyFull,
    /// Verify the chain only
    VerifyCa,
    /// Encrypt without verifying (not recommended)
    Require,
}

impl SslMode {
    /// libpq's spelling, as in PGSSLMODE.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::VerifyFull => "verify-full",
            SslMode::VerifyCa => "verify-ca",
            SslMode::Require => "require",
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn store(certs: Vec<CertificateDer<'static>>) -> RootCertStore {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(certs);
    store
}

fn webpki(
    store: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Option<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .ok()
}

/// A client config for `sslmode` trusting `roots`.
pub fn client_config(sslmode: SslMode, roots: &Roots) -> Result<ClientConfig> {
    let provider = provider();
    let verifier = Verifier::new(sslmode, roots, provider.clone())?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Failure::network(format!("setting up TLS: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// libpq's sslmode on top of webpki: verify-full checks chain and name,
/// verify-ca the chain only, require neither (encryption only).
#[derive(Debug)]
struct Verifier {
    sslmode: SslMode,
    primary: Arc<WebPkiServerVerifier>,
    /// Consult the system store when the built-in bundle doesn't know the
    /// issuer (only with the built-in bundle: `--ca-bundle` is the whole trust).
    with_system: bool,
    system: OnceLock<Option<Arc<WebPkiServerVerifier>>>,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    /// The verifier both a connection and `verify_chain` use, so the two
    /// can't drift apart.
    fn new(sslmode: SslMode, roots: &Roots, provider: Arc<CryptoProvider>) -> Result<Verifier> {
        let primary = webpki(store(roots.certificates()?), &provider)
            .ok_or_else(|| Failure::usage("the CA bundle holds no usable root certificate"))?;
        Ok(Verifier {
            sslmode,
            primary,
            with_system: matches!(roots, Roots::BuiltIn),
            system: OnceLock::new(),
            provider,
        })
    }

    fn system(&self) -> Option<&Arc<WebPkiServerVerifier>> {
        self.system
            .get_or_init(|| {
                let found = rustls_native_certs::load_native_certs();
                webpki(store(found.certs), &self.provider)
            })
            .as_ref()
    }
}

impl Verifier {
    /// The verification itself, saying which root set vouched for the chain.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<Vouched, rustls::Error> {
        if self.sslmode == SslMode::Require {
            return Ok(Vouched::NotChecked);
        }
        let mut vouched = Vouched::Primary;
        let mut result =
            self.primary
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if matches!(
            result,
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ) && self.with_system
            && let Some(system) = self.system()
        {
            vouched = Vouched::System;
            result = system.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        }
        match result {
            Ok(_) => Ok(vouched),
            Err(err) if self.sslmode == SslMode::VerifyCa && name_mismatch(&err) => Ok(vouched),
            Err(err) => Err(err),
        }
    }
}

/// Which trusted set vouched for a server's chain (`rdsiam doctor` reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vouched {
    /// The built-in bundle, or the `--ca-bundle` file.
    Primary,
    /// The system store, consulted when the built-in bundle did not know the issuer.
    System,
    /// `--sslmode require`: nothing was verified.
    NotChecked,
}

/// Verify `chain` (leaf first) for `host` exactly as a connection with
/// `sslmode` and `roots` would, and say which root set vouched for it.
pub fn verify_chain(
    sslmode: SslMode,
    roots: &Roots,
    chain: &[CertificateDer<'static>],
    host: &str,
) -> Result<std::result::Result<Vouched, rustls::Error>> {
    let verifier = Verifier::new(sslmode, roots, provider())?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Ok(Err(rustls::Error::NoCertificatesPresented));
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| Failure::usage(format!("`{host}` is not a valid TLS server name")))?;
    Ok(verifier.check(leaf, intermediates, &name, &[], UnixTime::now()))
}

fn name_mismatch(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, server_name, ocsp, now)
            .map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::parse_pem;

    #[test]
    fn every_mode_builds_with_the_built_in_bundle() {
        for mode in [SslMode::VerifyFull, SslMode::VerifyCa, SslMode::Require] {
            client_config(mode, &Roots::BuiltIn).unwrap();
        }
    }

    #[test]
    fn verify_chain_says_which_roots_vouched() {
        use rdsiam_testkit::ca::TestCa;
        let ca = TestCa::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        ca.write_ca(&file).unwrap();
        let (leaf, _) = ca.issue(&["db.example.com"]).unwrap();
        let chain = parse_pem(leaf.as_bytes());
        let roots = Roots::File(file);
        let check = |mode, roots: &Roots, host| verify_chain(mode, roots, &chain, host).unwrap();
        assert_eq!(
            check(SslMode::VerifyFull, &roots, "db.example.com"),
            Ok(Vouched::Primary)
        );
        assert!(matches!(
            check(SslMode::VerifyFull, &roots, "other.example.com"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForNameContext { .. } | CertificateError::NotValidForName
            ))
        ));
        assert_eq!(
            check(SslMode::VerifyCa, &roots, "other.example.com"),
            Ok(Vouched::Primary)
        );
        assert_eq!(
            check(SslMode::Require, &Roots::BuiltIn, "db.example.com"),
            Ok(Vouched::NotChecked)
        );
        // The built-in bundle (and the system store) do not know the test CA.
        assert_eq!(
            check(SslMode::VerifyFull, &Roots::BuiltIn, "db.example.com"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        );
    }

    #[test]
    fn pem_parsing_skips_comments() {
        let certs = crate::ca::parse_pem(crate::ca::BUNDLE.as_bytes());
        assert!(certs.len() >= 80);
        assert!(crate::ca::parse_pem(b"# only a comment\n").is_empty());
    }
}
