//! A trivial axum server, the throughput baseline for `bench/gate-throughput.sh`:
//! one route, `GET /`, answering 200 `ok`, on the same runtime and HTTP stack
//! as `postern serve`. Whatever `GET /v1/check` costs beyond this is the
//! gate's own work.
//!
//! ```sh
//! cargo build --release -p postern-server --examples
//! target/release/examples/trivial_server --listen 127.0.0.1:0
//! ```
//!
//! It prints `trivial_server listening on http://ADDR` on stdout once bound.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::routing::get;
use axum::Router;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "trivial_server",
    about = "GET / -> 200 ok: a throughput baseline."
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let app = Router::new().route("/", get(|| async { "ok" }));
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("trivial_server: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("trivial_server listening on http://{addr}");
    let _ = std::io::stdout().flush();
    match axum::serve(listener, app)
        .with_graceful_shutdown(postern_server::server::shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trivial_server: {e}");
            ExitCode::FAILURE
        }
    }
}
