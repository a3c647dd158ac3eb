//! `test-server --port 8080 --message "Response from server 1"`: a backend for trying switchyard.

use clap::Parser;

/// A small HTTP backend for trying switchyard: `GET /` answers with the message.
#[derive(Parser, Debug)]
#[command(name = "test-server", version)]
struct Args {
    /// Port to listen on, on every interface (IPv6 and IPv4).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Listen on this address only (`127.0.0.1`, `::1`) instead of every interface.
    #[arg(long)]
    host: Option<std::net::IpAddr>,
    /// Body of `GET /` [default: "Response from server on port PORT"].
    #[arg(long)]
    message: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let argv = test_server::go_style_args(std::env::args(), &["port", "host", "message"]);
    let args = Args::parse_from(argv);
    let message = args
        .message
        .unwrap_or_else(|| format!("Response from server on port {}", args.port));
    let bound = match args.host {
        Some(host) => tokio::net::TcpListener::bind((host, args.port)).await,
        None => test_server::bind_all_interfaces(args.port).await,
    };
    let listener = match bound {
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
