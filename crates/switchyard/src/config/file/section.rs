//! Reading one section so that every mistake in it is reported: a key that fails is located
//! (its dotted path and span), set aside, and the section read again.

use std::ops::Range;

use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use crate::config::error::{suggest, Problem};

/// The items of an array-of-tables value, with their index.
pub(super) fn array_items<'i>(
    path: &str,
    value: Spanned<DeValue<'i>>,
    problems: &mut Vec<Problem>,
) -> Vec<(usize, Spanned<DeValue<'i>>)> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items.into_iter().enumerate().collect(),
        _ => {
            problems.push(Problem::new(
                span,
                Some(path.to_owned()),
                format!("expected an array of tables: [[{path}]]"),
            ));
            Vec::new()
        }
    }
}

/// Deserializes one section. When a key in it is wrong, the problem is recorded, the key set
/// aside and the section read again, so that every wrong key is reported.
pub(super) fn section<T: for<'de> Deserialize<'de>>(
    path: &str,
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    section_keeping(path, value, problems, &mut Vec::new())
}

/// [`section`], also telling which top keys of the section were set aside.
pub(super) fn section_keeping<T: for<'de> Deserialize<'de>>(
    path: &str,
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
    set_aside: &mut Vec<String>,
) -> Option<T> {
    let mut value = value;
    for _ in 0..32 {
        let err = match T::deserialize(value.clone().into_deserializer()) {
            Ok(v) => return Some(v),
            Err(err) => err,
        };
        let message = err.message();
        // A key set aside for an earlier problem is now missing: already reported.
        if let Some(missing) = missing_field(message) {
            if set_aside.iter().any(|k| k == missing) {
                return None;
            }
        }
        let span = err.span().unwrap_or_else(|| value.span());
        let key = key_at(&value, &span);
        problems.push(problem(path, key.as_deref(), span.clone(), message));
        if let Some(key) = key {
            set_aside.push(key.split(['.', '[']).next().unwrap_or_default().to_owned());
        }
        if !remove_key_at(&mut value, &span) {
            return None;
        }
    }
    None
}

/// The problem serde reported at `span`, under `key` (below the section at `path`); an
/// unknown key gets a suggestion, or the list of known keys when none is close.
fn problem(path: &str, key: Option<&str>, span: Range<usize>, message: &str) -> Problem {
    let shown = match key {
        Some(k) => Some(join(path, k)),
        None if !path.is_empty() => Some(path.to_owned()),
        None => None,
    };
    let mut problem = Problem::new(span, shown, clean_message(message));
    if let Some((unknown, expected)) = unknown_field(message) {
        problem.message = format!("unknown key `{unknown}`");
        let suggestion = suggest(&unknown, &expected);
        if suggestion.is_none() {
            problem
                .message
                .push_str(&format!(" (expected one of: {})", expected.join(", ")));
        }
        problem = problem.with_suggestion(suggestion);
    }
    problem
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// `path` and the key below it (`pools.web` + `retries`, `listeners` + `[0]`).
fn join(path: &str, key: &str) -> String {
    match (path.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => path.to_owned(),
        _ if key.starts_with('[') => format!("{path}{key}"),
        _ => format!("{path}.{key}"),
    }
}

/// The dotted key path, below `value`, of the deepest key whose key or value contains `span`.
fn key_at(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(table) => {
            for (k, v) in table.iter() {
                let hit = contains(&k.span(), span) || contains(&v.span(), span);
                if hit {
                    let here = k.get_ref().to_string();
                    return Some(match key_at(v, span) {
                        Some(below) if !below.is_empty() => join(&here, &below),
                        _ => here,
                    });
                }
            }
            None
        }
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            contains(&item.span(), span).then(|| match key_at(item, span) {
                Some(below) if !below.is_empty() => join(&format!("[{i}]"), &below),
                _ => format!("[{i}]"),
            })
        }),
        _ => None,
    }
}

/// Removes the key (at any depth) whose key or value contains `span`; false if none does.
fn remove_key_at(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    match value.get_mut() {
        DeValue::Table(table) => {
            let mut target = None;
            for (k, v) in table.iter() {
                if contains(&k.span(), span) || contains(&v.span(), span) {
                    target = Some(k.get_ref().to_string());
                    break;
                }
            }
            let Some(target) = target else {
                return false;
            };
            let deeper = table
                .get_mut(target.as_str())
                .is_some_and(|v| remove_key_at(v, span));
            if !deeper {
                table.remove(target.as_str());
            }
            true
        }
        DeValue::Array(_) => false,
        _ => false,
    }
}

/// True when `inner` lies within `outer` (an empty `0..0` contains nothing).
fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer != &(0..0)
}

/// `unknown field `x`, expected one of `a`, `b`` → (`x`, [`a`, `b`]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((name.to_owned(), expected))
}

/// serde's message without trailing whitespace.
fn clean_message(message: &str) -> String {
    message.trim_end().trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_message_is_parsed() {
        let (name, expected) =
            unknown_field("unknown field `retires`, expected one of `retries`, `policy`").unwrap();
        assert_eq!(name, "retires");
        assert_eq!(expected, ["retries", "policy"]);
    }
}
