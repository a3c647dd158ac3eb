//! switchyard's own HTTP/1.1 client for backend connections: the request written and the
//! response read in the request's own future, without hyper's connection task and request
//! channel (about 3,400 instructions of the 36,800 a proxied request cost with them,
//! BENCHMARKS.md, "Instructions per proxied request"). Written by hand because no maintained
//! crate offers an HTTP/1.1 client that runs in the caller's task and hands the connection
//! back; `httparse` (hyper's own parser) reads the response heads.
//!
//! [`conn`]: one connection and one exchange on it; [`head`]: the response head and its
//! framing; [`body`]: the response body, which carries the connection; [`chunked`]: chunked
//! decoding; [`encode`]: the request head; `upload`: the request body on its way out.

pub mod body;
pub mod chunked;
pub mod conn;
pub mod encode;
pub mod head;
mod upload;

#[cfg(test)]
mod tests;
