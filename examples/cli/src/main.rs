//! `pubsub`: publish, subscribe and request on a bus from the shell.
//!
//! ```text
//! pubsub --url redis://127.0.0.1/ sub 'changed_task.*' --count 1
//! pubsub --url redis://127.0.0.1/ pub changed_task.alice '{"username":"alice"}' -H source=cli
//! pubsub --url amqp://guest:guest@127.0.0.1:5672/%2f request send.echo.request '{"message":"ping"}' --timeout 5s
//! ```

use std::process::ExitCode;

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    exit_code(cli::run(cli, &mut std::io::stdout()).await)
}

/// The exit code of the tool's result, printing the error and its causes if any.
fn exit_code(result: pubsub_core::Result<()>) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    let mut message = format!("error: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}
