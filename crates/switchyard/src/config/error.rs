//! Configuration errors that say where and what: `switchyard.toml:12:5: pools.api.retires:
//! unknown field `retires` (did you mean `retries`?)`, with the offending line quoted.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a configuration, located by its byte span in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte range in the file.
    pub span: Range<usize>,
    /// Dotted key path (`pools.api.backends[2]`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// A likely fix (`did you mean ...`).
    pub suggestion: Option<String>,
}

impl Problem {
    /// A problem at `span`.
    pub fn new(span: Range<usize>, key: Option<String>, message: String) -> Self {
        Problem {
            span,
            key,
            message,
            suggestion: None,
        }
    }

    /// Adds `did you mean` when there is a candidate.
    pub fn with_suggestion(mut self, candidate: Option<String>) -> Self {
        self.suggestion = candidate.map(|c| format!("did you mean `{c}`?"));
        self
    }
}

/// A configuration that cannot be used, with every problem found in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The problems, in file order.
    pub errors: Vec<Located>,
}

/// A problem with its line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The line's text.
    pub source_line: String,
    /// The problem.
    pub problem: Problem,
}

impl ConfigError {
    /// Locates `problems` in `text`, the contents of `path`.
    pub fn new(path: &Path, text: &str, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| (p.span.start, p.span.end));
        problems.dedup();
        let errors = problems
            .into_iter()
            .map(|problem| {
                let start = problem.span.start.min(text.len());
                let before = &text[..floor_char_boundary(text, start)];
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let column = before[line_start..].chars().count() + 1;
                let source_line = text[line_start..]
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                Located {
                    line,
                    column,
                    source_line,
                    problem,
                }
            })
            .collect();
        ConfigError {
            path: path.to_owned(),
            errors,
        }
    }

    /// An error that is about the file as a whole (cannot be read).
    pub fn whole_file(path: &Path, message: String) -> Self {
        ConfigError {
            path: path.to_owned(),
            errors: vec![Located {
                line: 0,
                column: 0,
                source_line: String::new(),
                problem: Problem::new(0..0, None, message),
            }],
        }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.line == 0 {
                write!(f, "{path}: {}", e.problem.message)?;
                continue;
            }
            write!(f, "{path}:{}:{}: ", e.line, e.column)?;
            if let Some(key) = &e.problem.key {
                write!(f, "{key}: ")?;
            }
            write!(f, "{}", e.problem.message)?;
            if let Some(s) = &e.problem.suggestion {
                write!(f, " ({s})")?;
            }
            let gutter = e.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:>col$}",
                "",
                e.line,
                e.source_line,
                "",
                "^",
                col = e.column
            )?;
        }
        if self.errors.len() > 1 {
            write!(f, "\n{} errors in {path}", self.errors.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn suggest<S: AsRef<str>>(word: &str, candidates: &[S]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c.as_ref()), c.as_ref()))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// Edit distance counting a swap of two neighbouring letters as one edit (optimal string
/// alignment); small inputs only: keys and names.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["retries", "policy", "backends"];
        assert_eq!(suggest("retires", &keys), Some("retries".into()));
        assert_eq!(suggest("backend", &keys), Some("backends".into()));
        assert_eq!(suggest("zzz", &keys), None);
        assert_eq!(suggest("hots", &["host", "path"]), Some("host".into()));
        assert_eq!(suggest("wbe", &["web", "api"]), Some("web".into()));
    }

    #[test]
    fn renders_file_line_column_key() {
        let text = "a = 1\n[pools.api]\nretires = 2\n";
        let start = text.find("retires").unwrap();
        let problem = Problem::new(
            start..start + 7,
            Some("pools.api.retires".into()),
            "unknown field `retires`".into(),
        )
        .with_suggestion(Some("retries".into()));
        let err = ConfigError::new(Path::new("s.toml"), text, vec![problem]);
        let shown = err.to_string();
        assert!(
            shown.starts_with(
                "s.toml:3:1: pools.api.retires: unknown field `retires` (did you mean `retries`?)"
            ),
            "{shown}"
        );
        assert!(shown.contains("3 | retires = 2"), "{shown}");
    }
}
