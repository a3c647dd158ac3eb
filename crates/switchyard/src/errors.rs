//! Walking an error's source chain, in one place: displaying it whole for a log line, and
//! finding a cause of a given type (hyper wraps the errors of the bodies it sends).

use std::error::Error;
use std::fmt;

/// Displays an error with its whole source chain: `cannot connect: connect failed: refused`.
/// A cause whose text the level above already shows (an error that prints its source in
/// its own message, as `cannot read x: denied` does) is not repeated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            let text = e.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            source = e.source();
        }
        Ok(())
    }
}

/// The first error of type `T` in `err`'s chain, `err` itself included.
pub fn find<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x: {source}")]
    struct Repeats {
        #[source]
        source: Outer,
    }

    #[test]
    fn a_cause_already_shown_is_not_repeated() {
        let err = Repeats {
            source: Outer(std::io::Error::other("inner")),
        };
        assert_eq!(Chain(&err).to_string(), "cannot read x: outer: inner");
    }

    #[test]
    fn chain_is_displayed_whole_and_searched() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&err).to_string(), "outer: inner");
        assert!(find::<std::io::Error>(&err).is_some());
        assert!(find::<std::fmt::Error>(&err).is_none());
    }
}
