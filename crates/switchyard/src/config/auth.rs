//! Access control settings: API keys (read from a key file or an environment variable),
//! where requests carry them, the route's requirements (a key, a role, IP rules) and the
//! proxies whose `X-Forwarded-For` is believed. The request path's side is `proxy::auth`.
//!
//! A key file has one key per line, `NAME sha256:HEX [role,role]`; `#` starts a comment;
//! blank lines are skipped. Only the SHA-256 digest of a secret is ever stored
//! (`switchyard hash-key` makes the line). Presented secrets are hashed and compared with
//! every key's digest in constant time ([`SecretDigest::matches`], `subtle`), so the time
//! taken says nothing about how close a guess was.

use std::path::Path;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

use super::cidr::{CidrSet, IpRules};

/// Default `access.realm`, named in `WWW-Authenticate: Bearer realm="..."`.
pub const DEFAULT_REALM: &str = "switchyard";

/// The `[access]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessConfig {
    /// Every API key known (from `api_keys_file` and `api_keys_env`); empty when none.
    pub keys: Arc<ApiKeys>,
    /// Where a request's key is looked for, in order.
    pub key_sources: Vec<KeySource>,
    /// `WWW-Authenticate: Bearer realm="REALM"`, ready to send with a `401`.
    pub challenge: HeaderValue,
    /// Peers whose `X-Forwarded-For` is believed; `None`: the peer is always the client.
    pub trusted_proxies: Option<Arc<CidrSet>>,
    /// The JWT provider (`[access.jwt]`), when configured.
    pub jwt: Option<Arc<super::jwt::JwtConfig>>,
}

/// Where a request carries its API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `Authorization: Bearer SECRET`.
    Bearer,
    /// A header holding the secret as is (`X-API-Key: SECRET`).
    Header(HeaderName),
    /// A query parameter (`?api_key=SECRET`).
    Query(String),
}

/// What a route asks of a request before it may pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteAccess {
    /// A known API key is required.
    pub api_key: bool,
    /// The key must have one of these roles (empty: any key).
    pub roles: Vec<String>,
    /// Which client addresses may use the route.
    pub ip: Option<IpRules>,
    /// An auth service to ask first (`forward_auth`).
    pub forward: Option<super::forward_auth::ForwardAuthConfig>,
    /// A valid JWT is required, with these claims (`None`: no token asked for).
    pub jwt: Option<Arc<super::jwt::RouteJwt>>,
}

/// The known API keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

/// One API key: its name (for logs and metrics), its secret's digest and its roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// The name logs and metrics show; never the secret.
    pub name: Arc<str>,
    /// SHA-256 of the secret.
    pub digest: SecretDigest,
    /// Its roles.
    pub roles: Vec<String>,
}

/// The SHA-256 digest of a secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

// === impl SecretDigest ===

impl SecretDigest {
    /// The digest of `secret`, computed by the TLS crypto provider (its assembly SHA-256;
    /// the `sha2` crate it replaced cost about 1,000 more instructions per keyed request).
    pub fn of(secret: &[u8]) -> Self {
        SecretDigest(super::tls::sha256(secret).0)
    }

    /// Parses `sha256:HEX` (64 hex digits).
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| "the hash must be `sha256:` and 64 hex digits".to_owned())?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the hash must be `sha256:` and 64 hex digits".to_owned());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| "the hash must be hex digits".to_owned())?;
        }
        Ok(SecretDigest(out))
    }

    /// Whether this is the digest of `presented`: hashed, then compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.matches_digest(&SecretDigest::of(presented))
    }

    /// Constant-time comparison of two digests.
    pub fn matches_digest(&self, other: &SecretDigest) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl std::fmt::Display for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

// === impl ApiKeys ===

impl ApiKeys {
    /// True when no key is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in the order read.
    pub fn keys(&self) -> &[ApiKey] {
        &self.keys
    }

    /// The key whose secret is `presented`. Every key's digest is compared, whatever matches,
    /// so the time taken depends on the number of keys only.
    pub fn find(&self, presented: &[u8]) -> Option<&ApiKey> {
        self.position(presented).map(|i| &self.keys[i])
    }

    /// The index of the key whose secret is `presented` (see [`ApiKeys::find`]).
    pub fn position(&self, presented: &[u8]) -> Option<usize> {
        let digest = SecretDigest::of(presented);
        let mut found = None;
        for (i, key) in self.keys.iter().enumerate() {
            if key.digest.matches_digest(&digest) {
                found = found.or(Some(i));
            }
        }
        found
    }

    /// Adds the keys of `text` (key-file lines); `origin` names where they came from in
    /// errors (`keys.txt`, `environment variable X`). Names must be unique over all sources.
    pub fn add_lines(&mut self, origin: &str, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let key = parse_line(line).map_err(|e| format!("{origin}:{}: {e}", n + 1))?;
            if self.keys.iter().any(|k| k.name == key.name) {
                return Err(format!(
                    "{origin}:{}: key name {:?} is used twice",
                    n + 1,
                    key.name
                ));
            }
            self.keys.push(key);
        }
        Ok(())
    }

    /// Reads a key file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        self.add_lines(&path.display().to_string(), &text)
    }
}

/// `NAME sha256:HEX [role,role]`.
fn parse_line(line: &str) -> Result<ApiKey, String> {
    let mut fields = line.split_whitespace();
    let (Some(name), Some(hash)) = (fields.next(), fields.next()) else {
        return Err("expected `NAME sha256:HEX [role,role]`".to_owned());
    };
    if !valid_word(name) {
        return Err(format!(
            "key name {name:?} must be letters, digits, `-`, `_` or `.`"
        ));
    }
    let digest = SecretDigest::parse(hash)?;
    let roles = fields
        .next()
        .map(parse_roles)
        .transpose()?
        .unwrap_or_default();
    if fields.next().is_some() {
        return Err("too many fields: expected `NAME sha256:HEX [role,role]`".to_owned());
    }
    Ok(ApiKey {
        name: Arc::from(name),
        digest,
        roles,
    })
}

/// `a,b,c`, each a word.
pub fn parse_roles(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(|r| {
            let r = r.trim();
            if valid_word(r) {
                Ok(r.to_owned())
            } else {
                Err(format!(
                    "role {r:?} must be letters, digits, `-`, `_` or `.`"
                ))
            }
        })
        .collect()
}

/// A name or role: letters, digits, `-`, `_`, `.`; at most 64 of them.
pub fn valid_word(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 64
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The token of `Authorization: Bearer TOKEN` (the scheme in any case).
pub fn bearer_token(value: &HeaderValue) -> Option<&[u8]> {
    let bytes = value.as_bytes();
    let scheme = bytes.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = bytes[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The key-file line for `secret` (what `switchyard hash-key` prints).
pub fn key_line(name: &str, secret: &[u8], roles: &[String]) -> String {
    let digest = SecretDigest::of(secret);
    if roles.is_empty() {
        format!("{name} {digest}")
    } else {
        format!("{name} {digest} {}", roles.join(","))
    }
}

// === impl KeySource ===

impl std::str::FromStr for KeySource {
    type Err = String;

    /// `bearer`, `header:NAME` or `query:NAME`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "bearer" {
            return Ok(KeySource::Bearer);
        }
        if let Some(name) = s.strip_prefix("header:") {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a header name"))?;
            return Ok(KeySource::Header(name));
        }
        if let Some(name) = s.strip_prefix("query:") {
            if !valid_word(name) {
                return Err(format!("{name:?} is not a query parameter name"));
            }
            return Ok(KeySource::Query(name.to_owned()));
        }
        Err(format!(
            "{s:?} is not a key source: use \"bearer\", \"header:NAME\" or \"query:NAME\""
        ))
    }
}

// === impl AccessConfig ===

impl AccessConfig {
    /// The challenge header for `realm`.
    pub fn challenge_for(realm: &str) -> Result<HeaderValue, String> {
        if realm.is_empty() || realm.contains(['"', '\\']) || !realm.is_ascii() {
            return Err("must be printable ASCII without quotes or backslashes".to_owned());
        }
        HeaderValue::from_str(&format!("Bearer realm=\"{realm}\""))
            .map_err(|_| "must be printable ASCII without quotes or backslashes".to_owned())
    }
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            keys: Arc::new(ApiKeys::default()),
            key_sources: vec![
                KeySource::Bearer,
                KeySource::Header(HeaderName::from_static("x-api-key")),
            ],
            challenge: HeaderValue::from_static("Bearer realm=\"switchyard\""),
            trusted_proxies: None,
            jwt: None,
        }
    }
}

#[cfg(test)]
mod tests;
