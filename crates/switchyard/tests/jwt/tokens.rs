//! What the JWT tests share: the test keys, claims, signing, and a configuration with
//! `[access.jwt]` and four routes.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde_json::{json, Value};
use switchyard::Config;

use crate::support::pki::{toml_path, CertDir};
use crate::support::{Client, Resp};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "switchyard-tests";

pub fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jwt_keys")
}

pub fn key_file(name: &str) -> PathBuf {
    keys_dir().join(name)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Valid claims for `sub`, with `extra` merged in (a `null` removes a claim).
pub fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({
        "sub": sub, "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 300,
    });
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

pub fn private_der(name: &str) -> Vec<u8> {
    PrivateKeyDer::from_pem_file(key_file(name))
        .expect("test key")
        .secret_der()
        .to_vec()
}

pub fn encoding_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 => {
            let secret = std::fs::read(key_file("hs.secret")).expect("secret");
            EncodingKey::from_secret(secret.trim_ascii())
        }
        Algorithm::RS256 => EncodingKey::from_rsa_der(&private_der("rsa.key")),
        Algorithm::ES256 => EncodingKey::from_ec_der(&private_der("ec.key")),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&private_der("ed.key")),
        other => panic!("no test key for {other:?}"),
    }
}

/// A token over `claims`, signed with the test key of `alg`.
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    sign_with(alg, kid, claims, &encoding_key(alg))
}

pub fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A configuration over `backend`: `[access.jwt]` with `provider` lines, then the routes
/// `/admin` (claim `role = admin`), `/scoped` (scope `read`, headers, token stripped),
/// `/open` (no token) and everything else (a token).
pub fn config_text(provider: &str, backend: &str) -> String {
    format!(
        "workers = 1\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [rate_limit]\nrequests = 0\n\
         [access]\nrealm = \"test\"\n\
         [access.jwt]\n{provider}\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
         [pools.p]\nbackends = [\"{backend}\"]\n\
         [[routes]]\nmatch = {{ path_prefix = \"/admin\" }}\npool = \"p\"\n\
         access = {{ jwt_claims = {{ role = [\"admin\", \"ops\"] }} }}\n\
         [[routes]]\nmatch = {{ path_prefix = \"/scoped\" }}\npool = \"p\"\nstrip_prefix = \"/scoped\"\n\
         access = {{ jwt_claims = {{ scope = \"read\" }}, jwt_headers = {{ sub = \"X-User\", groups = \"X-Groups\" }}, jwt_forward = false }}\n\
         [[routes]]\nmatch = {{ path_prefix = \"/open\" }}\npool = \"p\"\n\
         [[routes]]\npool = \"p\"\naccess = {{ jwt = true }}\n"
    )
}

pub fn jwks_provider() -> String {
    format!("jwks_file = {}", toml_path(&key_file("jwks.json")))
}

pub fn load(dir: &CertDir, text: &str) -> Config {
    let path = dir.write("switchyard.toml", text);
    Config::load(&path).unwrap_or_else(|e| panic!("config:\n{text}\n{e}"))
}

pub async fn send(
    client: &mut Client,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> Resp {
    let mut req = http::Request::get(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (n, v) in extra {
        req = req.header(*n, *v);
    }
    client
        .send(req.body(Bytes::new()).expect("request"))
        .await
        .expect("response")
}
