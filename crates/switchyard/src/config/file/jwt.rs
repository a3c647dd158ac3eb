//! `[access.jwt]` as written: where the verification keys are, what every token must say,
//! where requests carry it. A route's `jwt*` keys are in its `access` table (`access.rs`).

use serde::Deserialize;
use toml::Spanned;

use super::{Dur, Str};

/// `[access.jwt]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    /// A JWKS (JSON) file of verification keys.
    pub jwks_file: Option<Spanned<Str>>,
    /// A PEM file of public keys (`PUBLIC KEY`, `RSA PUBLIC KEY`, `CERTIFICATE`).
    pub public_key_file: Option<Spanned<Str>>,
    /// A file holding an HS256 secret.
    pub secret_file: Option<Spanned<Str>>,
    /// The issuer (`iss`) tokens must name: one, or a list.
    pub issuer: Option<Spanned<OneOrMany>>,
    /// The audience (`aud`) tokens must name: one, or a list.
    pub audience: Option<Spanned<OneOrMany>>,
    /// Clock leeway on `exp` and `nbf`.
    pub leeway: Option<Spanned<Dur>>,
    /// `bearer`, `header:NAME` or `cookie:NAME`.
    pub token_source: Option<Spanned<Str>>,
}

/// A string, or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(Str),
    /// Several.
    Many(Vec<Str>),
}

// === impl OneOrMany ===

impl OneOrMany {
    /// The strings, in order.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.0.clone()],
            OneOrMany::Many(list) => list.iter().map(|s| s.0.clone()).collect(),
        }
    }
}
