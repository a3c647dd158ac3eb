//! `[limits]`, the sizes the limits are written in, and a route's `security_headers`.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::Str;
use crate::config::limits::parse_size;

/// A size in bytes: a whole number, or a string with a unit (`"10MiB"`, `"512KiB"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"10MiB\", \"512KiB\" or 0")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                let text =
                    super::interpolate(v, |name| std::env::var(name).ok()).map_err(E::custom)?;
                parse_size(&text).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// `[limits]`: what every route and listener has unless it sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// See `--max-body-size`.
    pub max_body_size: Option<Size>,
    /// Longest request target; longer gets `414`.
    pub max_uri_length: Option<Spanned<Size>>,
    /// Client connections per listener.
    pub max_connections: Option<u32>,
    /// Client connections per listener and client IP.
    pub max_connections_per_ip: Option<u32>,
    /// `"close"` or `"503"`.
    pub over_connection_limit: Option<Spanned<Str>>,
    /// Requests per client connection.
    pub max_requests_per_connection: Option<u32>,
    /// Requests in progress per listener and client IP.
    pub max_requests_per_ip: Option<u32>,
    /// Response bytes queued per slow client.
    pub response_buffer: Option<Spanned<Size>>,
    /// Largest response head a backend may send.
    pub max_backend_header_bytes: Option<Spanned<Size>>,
}

/// A route's `security_headers`: a preset's name, or a table.
#[derive(Debug)]
pub enum SecurityHeadersFile {
    /// `security_headers = "recommended"` (or `"off"`).
    Preset(Str),
    /// `[routes.security_headers]`.
    Table(Box<SecurityHeadersTable>),
}

impl<'de> Deserialize<'de> for SecurityHeadersFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PresetOrTable;
        impl<'de> Visitor<'de> for PresetOrTable {
            type Value = SecurityHeadersFile;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a preset (\"recommended\" or \"off\") or a table")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Str::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(SecurityHeadersFile::Preset)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                SecurityHeadersTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| SecurityHeadersFile::Table(Box::new(t)))
            }
        }
        d.deserialize_any(PresetOrTable)
    }
}

/// `[routes.security_headers]`: a preset to start from, and headers changed from it (an
/// empty string leaves a header out).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersTable {
    /// `"recommended"` or `"off"` (the default).
    pub preset: Option<Spanned<Str>>,
    /// `Strict-Transport-Security` (sent over TLS only).
    pub hsts: Option<Spanned<Str>>,
    /// `X-Content-Type-Options`.
    pub content_type_options: Option<Spanned<Str>>,
    /// `X-Frame-Options`.
    pub frame_options: Option<Spanned<Str>>,
    /// The sources of CSP `frame-ancestors`.
    pub frame_ancestors: Option<Spanned<Str>>,
    /// `Referrer-Policy`.
    pub referrer_policy: Option<Spanned<Str>>,
    /// Remove `Server` and `X-Powered-By` from responses.
    pub hide_server: Option<bool>,
}
