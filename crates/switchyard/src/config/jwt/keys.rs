//! Reading JWT verification keys: a JWKS (RFC 7517, JSON), PEM public keys (`PUBLIC KEY`,
//! `RSA PUBLIC KEY` or a `CERTIFICATE`'s key) and an HS256 secret file. Each key gets its
//! one algorithm here; errors name the file and, where it helps, the line or the key.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::JwtKey;

/// Shortest HS256 secret: 256 bits (RFC 7518, section 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Shortest RSA modulus accepted (what ring verifies).
const MIN_RSA_BITS: usize = 2048;

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is read but holds no usable key: where and why.
    #[error("{}{at}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `:LINE` or `:LINE:COLUMN` (may be empty).
        at: String,
        /// What is wrong (naming the key when the file has several).
        reason: String,
    },
}

fn invalid(path: &Path, at: String, reason: impl Into<String>) -> KeyFileError {
    KeyFileError::Invalid {
        path: path.to_owned(),
        at,
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    std::fs::read(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })
}

// === JWKS ===

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// One JWK, the members switchyard reads (others are ignored).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

/// The signing keys of the JWKS at `path` (and the file's bytes). Encryption keys
/// (`use: enc`) and keys of other algorithms are passed over; a file with none left is an
/// error.
pub fn read_jwks(path: &Path) -> Result<(Vec<JwtKey>, Vec<u8>), KeyFileError> {
    let bytes = read(path)?;
    let keys = parse_jwks(&bytes).map_err(|(at, reason)| invalid(path, at, reason))?;
    Ok((keys, bytes))
}

/// The keys of a JWKS document, or where (`:LINE:COLUMN`, or nothing) and why not.
pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<JwtKey>, (String, String)> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| {
        let at = format!(":{}:{}", e.line(), e.column());
        (at, format!("not a JWKS (a JSON object with `keys`): {e}"))
    })?;
    let mut keys = Vec::new();
    let mut passed_over = Vec::new();
    for (i, value) in set.keys.into_iter().enumerate() {
        let jwk: Jwk = serde_json::from_value(value)
            .map_err(|e| (String::new(), format!("keys[{i}]: {e}")))?;
        let name = match &jwk.kid {
            Some(kid) => format!("keys[{i}] (kid {kid:?})"),
            None => format!("keys[{i}]"),
        };
        match jwk_key(&jwk) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => passed_over.push(name),
            Err(e) => return Err((String::new(), format!("{name}: {e}"))),
        }
    }
    if keys.is_empty() {
        let why = if passed_over.is_empty() {
            String::new()
        } else {
            format!(" ({} passed over)", passed_over.join(", "))
        };
        return Err((
            String::new(),
            format!("no signing key for HS256, RS256, ES256 or EdDSA{why}"),
        ));
    }
    Ok(keys)
}

/// The key a JWK describes; `None` for a key switchyard does not verify with.
fn jwk_key(jwk: &Jwk) -> Result<Option<JwtKey>, String> {
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let inferred = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => Algorithm::RS256,
        ("EC", Some("P-256")) => Algorithm::ES256,
        ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
        ("oct", _) => Algorithm::HS256,
        _ => return Ok(None),
    };
    let alg = match jwk.alg.as_deref() {
        None => inferred,
        Some(name) => match super::ALGORITHMS.into_iter().find(|a| alg_name(*a) == name) {
            Some(alg) if alg == inferred => alg,
            Some(_) => return Err(format!("alg {name:?} does not fit a kty {:?} key", jwk.kty)),
            None => return Ok(None),
        },
    };
    let member = |name: &str, v: &Option<String>| -> Result<Vec<u8>, String> {
        let text = v.as_deref().ok_or_else(|| format!("`{name}` is missing"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| format!("`{name}` is not base64url"))
    };
    let key = match alg {
        Algorithm::RS256 => {
            let (n, e) = (member("n", &jwk.n)?, member("e", &jwk.e)?);
            let n = trim_zeros(&n);
            if n.len() * 8 < MIN_RSA_BITS || e.is_empty() {
                return Err(format!(
                    "an RSA key needs a modulus of at least {MIN_RSA_BITS} bits"
                ));
            }
            DecodingKey::from_rsa_raw_components(n, &e)
        }
        Algorithm::ES256 => {
            let (x, y) = (member("x", &jwk.x)?, member("y", &jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err("a P-256 key needs 32-byte `x` and `y`".to_owned());
            }
            DecodingKey::from_ec_der(&[&[4u8][..], &x, &y].concat())
        }
        Algorithm::EdDSA => {
            let x = member("x", &jwk.x)?;
            if x.len() != 32 {
                return Err("an Ed25519 key needs a 32-byte `x`".to_owned());
            }
            DecodingKey::from_ed_der(&x)
        }
        _ => {
            let k = member("k", &jwk.k)?;
            if k.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "an HS256 secret needs at least {MIN_SECRET_BYTES} bytes"
                ));
            }
            DecodingKey::from_secret(&k)
        }
    };
    Ok(Some(JwtKey {
        kid: jwk.kid.clone(),
        alg,
        key,
    }))
}

fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The JOSE name of `alg`.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "other",
    }
}

// === PEM ===

/// The public keys of the PEM file at `path` (and the file's bytes): `PUBLIC KEY` blocks
/// (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA), `RSA PUBLIC KEY` blocks and the keys of
/// `CERTIFICATE`s. At least one; a private key is an error.
pub fn read_public_keys(path: &Path) -> Result<(Vec<JwtKey>, Vec<u8>), KeyFileError> {
    let bytes = read(path)?;
    let keys = parse_pem(&bytes).map_err(|(at, reason)| invalid(path, at, reason))?;
    Ok((keys, bytes))
}

/// The keys of a PEM text, or where (`:LINE`) and why not.
pub fn parse_pem(bytes: &[u8]) -> Result<Vec<JwtKey>, (String, String)> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| (String::new(), "not a PEM file (not text)".to_owned()))?;
    let mut keys = Vec::new();
    let mut block: Option<(usize, &str, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let at = || format!(":{}", n + 1);
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if block.is_some() {
                return Err((at(), "a BEGIN line inside a block".to_owned()));
            }
            block = Some((n + 1, label, String::new()));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let Some((start, begin, body)) = block.take() else {
                return Err((at(), "an END line without its BEGIN".to_owned()));
            };
            let at = format!(":{start}");
            if begin != label {
                return Err((at, format!("BEGIN {begin} ends with END {label}")));
            }
            let der = STANDARD
                .decode(body.as_bytes())
                .map_err(|_| (at.clone(), format!("the {begin} block is not base64")))?;
            keys.push(pem_key(begin, &der).map_err(|e| (at, e))?);
        } else if let Some((_, _, body)) = block.as_mut() {
            if !line.contains(':') {
                body.push_str(line);
            }
        }
    }
    if let Some((start, label, _)) = block {
        return Err((
            format!(":{start}"),
            format!("the {label} block has no END line"),
        ));
    }
    if keys.is_empty() {
        return Err((
            String::new(),
            "no \"BEGIN PUBLIC KEY\" or \"BEGIN CERTIFICATE\" block".to_owned(),
        ));
    }
    Ok(keys)
}

fn pem_key(label: &str, der: &[u8]) -> Result<JwtKey, String> {
    let key = |alg, key| JwtKey {
        kid: None,
        alg,
        key,
    };
    match label {
        "PUBLIC KEY" => {
            let (_, spki) = SubjectPublicKeyInfo::from_der(der)
                .map_err(|_| "the PUBLIC KEY block is not a public key".to_owned())?;
            spki_key(&spki).map(|(alg, k)| key(alg, k))
        }
        "CERTIFICATE" => {
            let (_, cert) = X509Certificate::from_der(der)
                .map_err(|_| "the CERTIFICATE block is not a certificate".to_owned())?;
            spki_key(cert.public_key()).map(|(alg, k)| key(alg, k))
        }
        "RSA PUBLIC KEY" => {
            let spki_less = x509_parser::public_key::RSAPublicKey::from_der(der)
                .map_err(|_| "the RSA PUBLIC KEY block is not an RSA key".to_owned())?;
            rsa_size(spki_less.1.key_size())?;
            Ok(key(Algorithm::RS256, DecodingKey::from_rsa_der(der)))
        }
        l if l.contains("PRIVATE KEY") => Err(format!(
            "a private key ({l}): give the public key (`openssl pkey -pubout`), never the private one"
        )),
        l => Err(format!("a {l} block is not a public key")),
    }
}

/// The algorithm and verification key of a SubjectPublicKeyInfo.
fn spki_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<(Algorithm, DecodingKey), String> {
    let oid = &spki.algorithm.algorithm;
    let data = &spki.subject_public_key.data;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err("not a valid RSA public key".to_owned());
        };
        rsa_size(rsa.key_size())?;
        return Ok((Algorithm::RS256, DecodingKey::from_rsa_der(data)));
    }
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let p256 = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == OID_EC_P256);
        if !p256 || data.len() != 65 || data[0] != 4 {
            return Err("an EC key must be an uncompressed P-256 key (ES256)".to_owned());
        }
        return Ok((Algorithm::ES256, DecodingKey::from_ec_der(data)));
    }
    if *oid == OID_SIG_ED25519 {
        if data.len() != 32 {
            return Err("not a valid Ed25519 public key".to_owned());
        }
        return Ok((Algorithm::EdDSA, DecodingKey::from_ed_der(data)));
    }
    Err(format!(
        "a key of type {oid}: use an RSA, P-256 or Ed25519 key"
    ))
}

fn rsa_size(bits: usize) -> Result<(), String> {
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "a {bits}-bit RSA key: at least {MIN_RSA_BITS} bits are needed"
        ));
    }
    Ok(())
}

// === secret ===

/// The HS256 secret in the file at `path`: its contents, surrounding whitespace aside, at
/// least [`MIN_SECRET_BYTES`] bytes.
pub fn read_secret(path: &Path) -> Result<(Vec<JwtKey>, Vec<u8>), KeyFileError> {
    let bytes = read(path)?;
    let secret = bytes.trim_ascii();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(invalid(
            path,
            String::new(),
            format!(
                "the secret is {} bytes; HS256 needs at least {MIN_SECRET_BYTES} (`openssl rand -hex 32`)",
                secret.len()
            ),
        ));
    }
    let key = JwtKey {
        kid: None,
        alg: Algorithm::HS256,
        key: DecodingKey::from_secret(secret),
    };
    Ok((vec![key], bytes))
}
