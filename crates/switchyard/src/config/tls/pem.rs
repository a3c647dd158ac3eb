//! Reading PEM files: certificate chains, private keys, CA bundles; a certificate and its key
//! checked as a pair (readable, matching, valid now); what a certificate says
//! ([`CertificateInfo`]); SHA-256 digests for fingerprints and for noticing that a file changed.
//! Every error names the file.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use x509_parser::extensions::GeneralName;

use super::{crypto_provider, ServerNames};

/// Why a PEM file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid PEM, or an item in it is unusable.
    #[error("{}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file has none of what it should hold.
    #[error("{} has no {what} (a PEM block \"-----BEGIN {label}-----\")", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
        /// Its PEM label.
        label: &'static str,
    },
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// One of the files cannot be read or parsed.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The first certificate of the chain cannot be parsed.
    #[error("{}: not a valid X.509 certificate: {reason}", path.display())]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is of a kind the crypto provider cannot sign with.
    #[error("{}: the private key cannot be used: {reason}", path.display())]
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate has expired.
    #[error("the certificate in {} expired on {at}", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// Its `notAfter`, UTC.
        at: String,
    },
    /// The certificate is not valid yet.
    #[error("the certificate in {} is not valid before {at}", path.display())]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// Its `notBefore`, UTC.
        at: String,
    },
}

/// A certificate chain and its key, checked, with what the certificate says.
#[derive(Clone, Debug)]
pub struct LoadedPair {
    /// What the TLS library serves.
    pub key: Arc<CertifiedKey>,
    /// The certificate's subject, names and validity.
    pub info: CertificateInfo,
    /// The digests of the certificate file and of the key file as they were read.
    pub digests: (Digest, Digest),
}

/// What a certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject, RFC 4514 style (`CN=client,O=Example`).
    pub subject: String,
    /// Every subject alternative name as text: DNS names, IP addresses, URIs, e-mail addresses.
    pub sans: Vec<String>,
    /// The server names it covers: its DNS and IP subject alternative names, or its common
    /// name when it has none.
    pub names: ServerNames,
    /// `notBefore`, Unix seconds.
    pub not_before: i64,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// A SHA-256 digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

// === reading files ===

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_error(path: &Path, e: impl std::fmt::Display) -> PemError {
    PemError::Parse {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn certificates_in(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error(path, e))?;
    if certs.is_empty() {
        return Err(PemError::Missing {
            path: path.to_owned(),
            what: "certificate",
            label: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn key_in(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::Missing {
            path: path.to_owned(),
            what: "private key",
            label: "PRIVATE KEY",
        },
        e => parse_error(path, e),
    })
}

/// The certificates in the PEM file at `path` (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    certificates_in(path, &read(path)?)
}

/// The first private key in the PEM file at `path`.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    key_in(path, &read(path)?)
}

/// The CA certificates in the PEM file at `path`, as trust anchors, with the file's digest.
pub fn read_roots(path: &Path) -> Result<(RootCertStore, Digest), PemError> {
    let pem = read(path)?;
    let mut roots = RootCertStore::empty();
    for cert in certificates_in(path, &pem)? {
        roots
            .add(cert)
            .map_err(|e| parse_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok((roots, sha256(&pem)))
}

/// Reads the chain at `cert` and the key at `key` and checks that they can be served at
/// `now`: both parse, the key is the certificate's, and the certificate is valid.
pub fn load_pair(cert: &Path, key: &Path, now: SystemTime) -> Result<LoadedPair, PairError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = certificates_in(cert, &cert_pem)?;
    let private_key = key_in(key, &key_pem)?;
    let info = parse_certificate(&chain[0]).map_err(|reason| PairError::BadCertificate {
        path: cert.to_owned(),
        reason,
    })?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(private_key)
        .map_err(|e| PairError::UnusableKey {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(PairError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            })
        }
    }
    let now = unix_seconds(now);
    if now > info.not_after {
        return Err(PairError::Expired {
            path: cert.to_owned(),
            at: format_utc(info.not_after),
        });
    }
    if now < info.not_before {
        return Err(PairError::NotYetValid {
            path: cert.to_owned(),
            at: format_utc(info.not_before),
        });
    }
    Ok(LoadedPair {
        key: Arc::new(certified),
        info,
        digests: (sha256(&cert_pem), sha256(&key_pem)),
    })
}

// === impl PairError ===

impl PairError {
    /// The file the problem is in.
    pub fn path(&self) -> &Path {
        match self {
            PairError::Pem(PemError::Read { path, .. })
            | PairError::Pem(PemError::Parse { path, .. })
            | PairError::Pem(PemError::Missing { path, .. })
            | PairError::BadCertificate { path, .. }
            | PairError::UnusableKey { path, .. }
            | PairError::Expired { path, .. }
            | PairError::NotYetValid { path, .. } => path,
            PairError::KeyMismatch { key, .. } => key,
        }
    }
}

// === certificates ===

/// What the DER certificate `der` says.
pub fn parse_certificate(der: &[u8]) -> Result<CertificateInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut sans = Vec::new();
    let mut server = Vec::new();
    let extension = cert.subject_alternative_name().map_err(|e| e.to_string())?;
    for name in extension.iter().flat_map(|e| &e.value.general_names) {
        match name {
            GeneralName::DNSName(dns) => {
                sans.push((*dns).to_owned());
                server.push((*dns).to_owned());
            }
            GeneralName::IPAddress(bytes) => {
                if let Some(ip) = ip_from(bytes) {
                    sans.push(ip.to_string());
                    server.push(ip.to_string());
                }
            }
            GeneralName::URI(uri) => sans.push((*uri).to_owned()),
            GeneralName::RFC822Name(mail) => sans.push((*mail).to_owned()),
            _ => {}
        }
    }
    if server.is_empty() {
        server.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_owned),
        );
    }
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        sans,
        names: ServerNames::new(server.iter().map(String::as_str)),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

// === digests and time ===

/// The SHA-256 digest of `data`, computed by the crypto provider.
pub fn sha256(data: &[u8]) -> Digest {
    let hash = crypto_provider()
        .cipher_suites
        .iter()
        .filter_map(|suite| suite.tls13())
        .map(|suite| suite.common.hash_provider)
        .find(|h| h.algorithm() == rustls::crypto::hash::HashAlgorithm::SHA256);
    let mut out = [0u8; 32];
    if let Some(hash) = hash {
        let output = hash.hash(data);
        let bytes = output.as_ref();
        if bytes.len() == out.len() {
            out.copy_from_slice(bytes);
        }
    }
    Digest(out)
}

impl Digest {
    /// The digest of the file at `path`.
    pub fn of_file(path: &Path) -> io::Result<Digest> {
        std::fs::read(path).map(|data| sha256(&data))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Unix seconds as `2026-01-31T12:00:00Z`.
pub fn format_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = crate::clock::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
