//! Header names and values in routes: the `request_headers` and `response_headers` edits
//! (`set`, `add`, `remove`), and the pairs of `match.headers`.

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use super::Checker;
use crate::config::file::{HeadersFile, Str};
use crate::config::route::HeaderEdits;

/// The edits of `key` (`routes[N].request_headers` or `.response_headers`); none without a
/// table.
pub(super) fn header_edits(
    file: Option<&HeadersFile>,
    key: &str,
    c: &mut Checker<'_>,
) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    let Some(file) = file else {
        return edits;
    };
    edits.set = file
        .set
        .iter()
        .filter_map(|(n, v)| header_pair(n, v, format!("{key}.set.{}", n.get_ref()), c))
        .collect();
    edits.add = file
        .add
        .iter()
        .filter_map(|(n, v)| header_pair(n, v, format!("{key}.add.{}", n.get_ref()), c))
        .collect();
    for name in &file.remove {
        match HeaderName::from_bytes(name.get_ref().as_bytes()) {
            Ok(n) => edits.remove.push(n),
            Err(_) => c.error(
                name.span(),
                format!("{key}.remove"),
                format!("{:?} is not a valid header name", name.get_ref()),
            ),
        }
    }
    edits
}

/// A header name and value, both valid; else the bad one is reported under `key`.
pub(super) fn header_pair(
    name: &Spanned<String>,
    value: &Spanned<Str>,
    key: String,
    c: &mut Checker<'_>,
) -> Option<(HeaderName, HeaderValue)> {
    match (
        HeaderName::from_bytes(name.get_ref().as_bytes()),
        HeaderValue::from_str(&value.get_ref().0),
    ) {
        (Ok(n), Ok(v)) => Some((n, v)),
        (Err(_), _) => {
            c.error(name.span(), key, "is not a valid header name");
            None
        }
        (_, Err(_)) => {
            c.error(value.span(), key, "is not a valid header value");
            None
        }
    }
}
