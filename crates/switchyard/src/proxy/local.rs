//! Responses switchyard makes itself on the request path: a route's redirect or fixed
//! response. A response made without reading the request body closes the connection, so the
//! unread body can never be taken for the next request.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{request, Response, StatusCode};

use super::body::ResponseBody;
use crate::body::close_if_unread;

/// A response switchyard makes itself.
pub fn local_response(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A route's redirect: `to` with `{host}` (without port), `{hostport}`, `{uri}`, `{path}`
/// and `{query}` filled in.
pub fn redirect(
    parts: &request::Parts,
    to: &str,
    status: StatusCode,
    body_unread: bool,
) -> Response<ResponseBody> {
    let hostport = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let host = crate::routing::request_host(parts);
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let uri = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
    let location = to
        .replace("{hostport}", hostport)
        .replace("{host}", &host)
        .replace("{uri}", uri)
        .replace("{path}", path)
        .replace("{query}", query);
    let mut resp = local_response(status, Bytes::new(), "text/plain; charset=utf-8");
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            resp.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
    }
    close_if_unread(resp.headers_mut(), body_unread);
    resp
}

/// A route's fixed response.
pub fn fixed_response(
    status: StatusCode,
    body: &Bytes,
    content_type: &HeaderValue,
    body_unread: bool,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body.clone()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type.clone());
    close_if_unread(resp.headers_mut(), body_unread);
    resp
}
