//! The `meanwhile` binary: parses arguments and hands them to the library's `run`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = meanwhile::Cli::parse();
    match meanwhile::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meanwhile: {e:#}");
            ExitCode::from(meanwhile::exit::code_of(&e))
        }
    }
}
