//! The clap command as the binary parses it, prints its help and generates completions and
//! the manual page from it: [`Cli`]'s derived definition, with each subcommand's help showing
//! what applies to it (the demo's own defaults; no proxy flags for `version` or `manpage`).

use clap::CommandFactory;

use super::Cli;

/// The demo's `--rate-limit` default as clap shows it ([`demo::RATE_LIMIT`]).
const DEMO_RATE_LIMIT: &str = "20";

/// The proxy's flags that only make sense for the proxy (every global flag but these).
const KEPT_BY_SIGNALLERS: &[&str] = &["pid_file", "shutdown_timeout"];

/// Subcommands that take none of the proxy's flags, and those they keep.
const ASIDE: &[(&str, &[&str])] = &[
    ("reload", KEPT_BY_SIGNALLERS),
    ("stop", KEPT_BY_SIGNALLERS),
    ("version", &[]),
    ("completions", &[]),
    ("manpage", &[]),
];

impl Cli {
    /// The clap command: [`Cli`]'s definition, adjusted per subcommand: `demo` shows its own `--rate-limit`
    /// default and hides `--backends` (it starts its own); `reload`, `stop`, `version`,
    /// `completions` and `manpage` hide the proxy's flags.
    pub fn clap_command() -> clap::Command {
        let cmd = <Cli as CommandFactory>::command();
        // A subcommand that has an argument of a global's id keeps its own when clap copies
        // the globals into the subcommands: give those their adjusted copies first.
        let globals: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| a.is_global_set())
            .cloned()
            .collect();
        let find = |id: &str| {
            globals
                .iter()
                .find(|a| a.get_id() == id)
                .cloned()
                .expect("a global flag of Cli")
        };
        let mut cmd = cmd.mut_subcommand("demo", |demo| {
            demo.arg(find("rate_limit").default_value(DEMO_RATE_LIMIT))
                .arg(find("backends").hide(true))
        });
        for (name, kept) in ASIDE {
            cmd = cmd.mut_subcommand(*name, |mut sub| {
                for arg in globals
                    .iter()
                    .filter(|a| !kept.contains(&a.get_id().as_str()))
                {
                    sub = sub.arg(arg.clone().hide(true));
                }
                sub
            });
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    #[test]
    fn demo_rate_limit_default_is_the_demos() {
        assert_eq!(DEMO_RATE_LIMIT, demo::RATE_LIMIT.to_string());
    }

    #[test]
    fn the_command_is_consistent() {
        Cli::clap_command().debug_assert();
    }
}
