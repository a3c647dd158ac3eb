//! switchyard's own HTTP/2 codec, being built to take over from the `h2` crate behind
//! [`super::http2`]: the frames ([`frame`]) and header compression ([`hpack`]) so far.
//!
//! Why by hand: an idle HTTP/2 connection served by `h2` holds its 16 KiB write buffer and
//! 8 KiB read buffer for as long as it lives (about 39 KiB per idle connection in all, ten
//! times the 4 KiB bar `docs/performance.md` sets), and a proxied request on it costs about
//! 23,000 instructions in `hyper` and `h2` around `proxy::handle`'s 15,000, much of it
//! moving large frame and stream structures by value. The pieces here are written to keep
//! no buffer while idle and to hand fields to the request without copying them.

pub mod frame;
pub mod hpack;
