//! Argument errors in meanwhile's own words: an unknown option names itself and the
//! option that was probably meant, on one line, with exit code 2.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Reports a parse error (or prints help or the version) and exits: 2 for a wrong
/// argument, 0 for `--help` and `--version`.
pub fn exit(e: clap::Error) -> ! {
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(message) = unknown_option(&e)
    {
        crate::out::err(format_args!("meanwhile: {message}\n"));
        std::process::exit(2);
    }
    // clap prints help to stdout and ignores a closed one.
    e.exit()
}

/// `unknown option --timout; did you mean --timeout? (see 'meanwhile run --help')`.
fn unknown_option(e: &clap::Error) -> Option<String> {
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    if !arg.starts_with('-') {
        return None; // an unexpected value, not an option: clap's words fit
    }
    let command = match e.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(usage)) => command_of_usage(&usage.to_string()),
        _ => "meanwhile".to_string(),
    };
    let help = format!("see '{command} --help'");
    Some(match e.get(ContextKind::SuggestedArg) {
        Some(ContextValue::String(meant)) => {
            format!("unknown option {arg}; did you mean {meant}? ({help})")
        }
        _ if e.get(ContextKind::Suggested).is_some() => {
            format!("unknown option {arg} ({help}; a value that starts with '-' goes after '--')")
        }
        _ => format!("unknown option {arg} ({help})"),
    })
}

/// `meanwhile run` from `Usage: meanwhile run [OPTIONS] <CMD>...`.
fn command_of_usage(usage: &str) -> String {
    let line = usage.lines().next().unwrap_or_default();
    let line = line.trim_start_matches("Usage:").trim();
    line.split_whitespace()
        .take_while(|w| !w.starts_with(['[', '<', '-']))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check(args: &[&str], expect: Option<&str>) {
        let e = crate::Cli::try_parse_from(args).unwrap_err();
        assert_eq!(unknown_option(&e).as_deref(), expect, "{args:?}: {e}");
    }

    #[test]
    fn unknown_options_name_what_was_meant() {
        check(
            &["meanwhile", "run", "--timout", "5m", "--", "make"],
            Some("unknown option --timout; did you mean --timeout? (see 'meanwhile run --help')"),
        );
        check(
            &["meanwhile", "run", "--mem-limit", "64M", "--", "make"],
            Some(
                "unknown option --mem-limit (see 'meanwhile run --help'; a value that starts with '-' goes after '--')",
            ),
        );
        check(
            &["meanwhile", "ls", "--jsn"],
            Some("unknown option --jsn; did you mean --json? (see 'meanwhile ls --help')"),
        );
        check(&["meanwhile", "ls", "extra"], None);
        check(
            &["meanwhile", "daemon", "stop", "--stop-task"],
            Some(
                "unknown option --stop-task; did you mean --stop-tasks? (see 'meanwhile daemon stop --help')",
            ),
        );
    }

    #[test]
    fn the_command_may_carry_its_own_options() {
        for args in [
            &["meanwhile", "run", "--", "ls", "-la"][..],
            &["meanwhile", "run", "ls", "-la"],
            &[
                "meanwhile",
                "run",
                "-t",
                "5m",
                "ls",
                "--all",
                "--timeout",
                "3",
            ],
        ] {
            let cli = crate::Cli::try_parse_from(args).unwrap();
            let crate::Command::Run(a) = cli.command else {
                panic!("{args:?} is a run")
            };
            let at = args.iter().position(|a| *a == "ls").unwrap();
            assert_eq!(a.command, args[at..], "{args:?}");
        }
    }
}
