//! Reading PEM files: certificate chains and private keys, with errors that name the file
//! and say what is wrong with it. Used for the pools' `tls` files and `--upstream-ca`.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file cannot be opened or read.
    #[error("cannot read {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("{path:?} is not a valid PEM file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file holds no item of the kind wanted.
    #[error("{path:?} holds no {what} (expected a PEM \"BEGIN {marker}\" block)")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
        /// The PEM label expected.
        marker: &'static str,
    },
}

/// Every certificate in the PEM file at `path`, in file order (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, e))?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: path.to_owned(),
            what: "certificate",
            marker: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(PemError::Empty {
            path: path.to_owned(),
            what: "private key",
            marker: "PRIVATE KEY",
        }),
        Err(e) => Err(invalid(path, e)),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, e: pem::Error) -> PemError {
    let reason = match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a section is missing its {:?} line",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "bad section start line {:?}",
            String::from_utf8_lossy(&line)
        ),
        pem::Error::Base64Decode(e) => format!("bad base64: {e}"),
        other => other.to_string(),
    };
    PemError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_file_and_the_problem() {
        let dir = std::env::temp_dir().join(format!("switchyard-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = read_certs(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read ") && err.contains("missing.pem"),
            "{err}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let err = read_certs(&empty).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
        let err = read_key(&empty).unwrap_err().to_string();
        assert!(err.contains("holds no private key"), "{err}");
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let err = read_certs(&broken).unwrap_err().to_string();
        assert!(err.contains("is not a valid PEM file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
