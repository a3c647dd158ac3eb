//! Running switchyard as a service: the `--pid-file` and the signals `switchyard reload` and
//! `switchyard stop` send through it ([`pid`]), the configuration file equivalent to the
//! flags (`switchyard print-config`, [`print_config`](mod@print_config)), the build details of
//! `switchyard version` ([`version`]), and the shell completions and man page generated from
//! the flag definitions ([`completions`], [`manpage`]).

use std::io::{self, Write};

use crate::cli::Cli;

pub mod pid;
pub mod print_config;

pub use pid::{PidError, PidFile};
pub use print_config::{print_config, PrintConfigError};

/// `switchyard version`: the package version and how this binary was built.
pub fn version() -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut out = format!(
        "switchyard {}\n\
         target:   {}-{} ({profile} build)\n\
         tls:      rustls with the ring crypto provider (TLS 1.3 and 1.2)\n\
         http:     own HTTP/1.1 (httparse) and HTTP/2 (own HPACK) servers; hyper 1 for HTTP/2 backends\n\
         license:  {}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        env!("CARGO_PKG_LICENSE"),
    );
    // Set by whoever builds (the Dockerfile passes it), not by a build script.
    if let Some(commit) = option_env!("SWITCHYARD_COMMIT") {
        out.push_str(&format!("commit:   {commit}\n"));
    }
    out
}

/// `switchyard completions SHELL`: the completion script for `shell`, from
/// [`Cli::clap_command`].
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::clap_command(), "switchyard", out);
}

/// `switchyard manpage`: the manual page (roff), from [`Cli::clap_command`].
pub fn manpage(out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(Cli::clap_command()).render(out)
}
