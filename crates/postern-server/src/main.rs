//! `postern`: see `postern --help`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    postern_server::cli::main().await
}
