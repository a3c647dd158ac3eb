//! `test-server --port 8080 --message "Response from server 1"`: a backend for trying switchyard.

use clap::Parser;

/// A small HTTP backend for trying switchyard: `GET /` answers with the message.
#[derive(Parser, Debug)]
#[command(name = "test-server", version)]
struct Args {
    /// Port to listen on, on every interface (IPv6 and IPv4).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Body of `GET /` [default: "Response from server on port PORT"].
    #[arg(long)]
    message: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let argv = test_server::go_style_args(std::env::args(), &["port", "message"]);
    let args = Args::parse_from(argv);
    let message = args
        .message
        .unwrap_or_else(|| format!("Response from server on port {}", args.port));
    let listener = match test_server::bind_all_interfaces(args.port).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("test-server: cannot listen on port {}: {e}", args.port);
            std::process::exit(1);
        }
    };
    let server = match test_server::spawn(listener, test_server::Options { message }) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("test-server: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("test-server listening on {}", server.addr());
    tokio::select! {
        _ = server.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
