//! The `meanwhile` binary: parses arguments and hands them to the library's `run`.

use clap::{CommandFactory, Parser};
use std::process::ExitCode;

fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash meanwhile -- ARGS`) is answered
    // here, and the process ends.
    clap_complete::CompleteEnv::with_factory(meanwhile::Cli::command)
        .var(meanwhile::cmd::completions::VAR)
        .complete();
    let cli = match meanwhile::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => meanwhile::cli_error::exit(e),
    };
    match meanwhile::run(cli) {
        Ok(code) => code,
        Err(e) if meanwhile::out::is_pipe_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            meanwhile::out::err(format_args!("meanwhile: {e:#}\n"));
            ExitCode::from(meanwhile::exit::code_of(&e))
        }
    }
}
