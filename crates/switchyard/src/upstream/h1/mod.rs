//! switchyard's own HTTP/1.1 client for backend connections (work in progress, not yet used
//! by `upstream::connect`): the request written and the response read in the request's own
//! task, without hyper's connection task and request channel, which cost about 8,900
//! instructions per proxied request (BENCHMARKS.md, "Instructions per proxied request").

pub mod body;
pub mod chunked;
pub mod conn;
pub mod encode;
pub mod head;
mod upload;

#[cfg(test)]
mod tests;
