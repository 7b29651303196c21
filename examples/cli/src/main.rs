//! `pubsub`: publish, subscribe and request on a bus from the shell.
//!
//! ```text
//! pubsub --url redis://127.0.0.1/ sub 'changed_task.*' --count 1
//! pubsub --url redis://127.0.0.1/ pub changed_task.alice '{"username":"alice"}' -H source=cli
//! pubsub --url amqp://guest:guest@127.0.0.1:5672/%2f request send.echo.request '{"message":"ping"}' --timeout 5s
//! ```

use std::process::ExitCode;

use clap::Parser;
use pubsub_examples::{cli, demo};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    demo::exit_code(cli::run(cli, &mut std::io::stdout()).await)
}
