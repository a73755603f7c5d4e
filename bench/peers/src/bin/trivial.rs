//! The baseline: `GET /` answers 200 `ok`, the handler of
//! `crates/postern-server/examples/trivial_server.rs` (which
//! `bench/gate-throughput.sh` measures against) on the same stack, built in
//! this workspace with the same profile as the other peers.

use std::process::ExitCode;

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match postern_peers::Args::parse("trivial") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("trivial: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = Router::new().route("/", get(|| async { "ok" }));
    postern_peers::serve("trivial", args.listen, app).await
}
