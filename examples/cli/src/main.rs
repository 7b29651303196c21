//! `pubsub`: publish, subscribe, request and reply on a bus from the shell.
//!
//! ```text
//! pubsub --url redis://127.0.0.1/ sub 'changed_task.*' --count 1
//! pubsub --url redis://127.0.0.1/ pub changed_task.alice '{"username":"alice"}' -H source=cli
//! pubsub --url amqp://guest:guest@127.0.0.1:5672/%2f request send.echo.request '{"message":"ping"}' --timeout 5s
//! pubsub --url amqp://guest:guest@127.0.0.1:5672/%2f reply send.echo.request '{"response":"pong"}'
//! ```

use std::process::ExitCode;

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The library's warnings (a reconnect, a lag) on stderr, filtered by RUST_LOG; the
    // only error is a subscriber installed before, which then does the job.
    let _ = pubsub_connect::logging::init(pubsub_connect::logging::LogFormat::Text);
    exit_code(cli::run(cli, &mut std::io::stdout()).await)
}

/// The exit code of the tool's result, printing the error and its causes if any.
fn exit_code(result: cli::Result<()>) -> ExitCode {
    let error = match result {
        Ok(()) => return ExitCode::SUCCESS,
        // `pubsub sub ... | head`: the reader has what it wanted.
        Err(error) if error.is_closed_output() => return ExitCode::SUCCESS,
        Err(error) => error,
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
