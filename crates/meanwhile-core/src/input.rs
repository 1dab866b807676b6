//! Interactive tasks: a terminal's size, the keys a person presses, what is sent to a
//! task's stdin or terminal, and what a running task is seen doing (waiting for input,
//! listening on sockets).

use crate::ident::{TaskId, Timestamp};
use crate::spec::SpecError;
use serde::{Deserialize, Serialize};

/// Most columns or rows a terminal may have.
pub const MAX_TERMINAL_SIDE: u16 = 1000;
/// Most characters of text one input request may carry.
pub const MAX_INPUT_CHARS: usize = 65_536;
/// Most keys one input request may press.
pub const MAX_INPUT_KEYS: usize = 256;
/// Most bytes one input request may write: its text and keys at their longest.
pub const MAX_INPUT_BYTES: usize = 4 * MAX_INPUT_CHARS + 4 * MAX_INPUT_KEYS;
/// Longest prompt line kept for `waiting_for_input`, in bytes.
pub const MAX_PROMPT_LEN: usize = 200;

/// A pseudo-terminal's size, `120x40` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Terminal {
    /// Columns, 1 to 1000; 80 when absent.
    #[serde(deserialize_with = "crate::de::int")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_TERMINAL_SIDE)))]
    pub cols: u16,
    /// Rows, 1 to 1000; 24 when absent.
    #[serde(deserialize_with = "crate::de::int")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_TERMINAL_SIDE)))]
    pub rows: u16,
}

impl Default for Terminal {
    fn default() -> Terminal {
        Terminal { cols: 80, rows: 24 }
    }
}

impl Terminal {
    /// Checks both sides are 1 to [`MAX_TERMINAL_SIDE`]; `field` names the spec field.
    pub fn check(&self, field: &'static str) -> Result<(), SpecError> {
        let ok = |n: u16| (1..=MAX_TERMINAL_SIDE).contains(&n);
        if ok(self.cols) && ok(self.rows) {
            Ok(())
        } else {
            Err(SpecError {
                field,
                message: format!(
                    "a terminal is 1 to {MAX_TERMINAL_SIDE} columns and rows, got {}x{}",
                    self.cols, self.rows
                ),
            })
        }
    }
}

impl std::fmt::Display for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.cols, self.rows)
    }
}

impl std::str::FromStr for Terminal {
    type Err = String;
    /// `COLSxROWS`, such as `120x40`.
    fn from_str(s: &str) -> Result<Terminal, String> {
        let bad = || format!("{s:?} is not a terminal size; write COLSxROWS, such as 120x40");
        let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let t = Terminal {
            cols: c.trim().parse().map_err(|_| bad())?,
            rows: r.trim().parse().map_err(|_| bad())?,
        };
        t.check("tty").map_err(|e| e.message)?;
        Ok(t)
    }
}

/// A key a person presses, sent as the bytes a terminal sends for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Key {
    /// Return: a carriage return on a terminal, a newline on a pipe.
    Enter,
    /// Tab.
    Tab,
    /// Ctrl-C: on a terminal, the interrupt for its foreground processes.
    CtrlC,
    /// Ctrl-D: end of input at the start of a terminal's line; closes a pipe.
    CtrlD,
    /// Ctrl-Z: on a terminal, suspends its foreground processes.
    CtrlZ,
    /// Cursor up.
    Up,
    /// Cursor down.
    Down,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
}

impl Key {
    /// Every key, for help texts and errors.
    pub const ALL: [Key; 11] = [
        Key::Enter,
        Key::Tab,
        Key::CtrlC,
        Key::CtrlD,
        Key::CtrlZ,
        Key::Up,
        Key::Down,
        Key::Left,
        Key::Right,
        Key::Esc,
        Key::Backspace,
    ];

    /// The key's name on the wire and the command line (`ctrl-c`).
    pub fn name(self) -> &'static str {
        match self {
            Key::Enter => "enter",
            Key::Tab => "tab",
            Key::CtrlC => "ctrl-c",
            Key::CtrlD => "ctrl-d",
            Key::CtrlZ => "ctrl-z",
            Key::Up => "up",
            Key::Down => "down",
            Key::Left => "left",
            Key::Right => "right",
            Key::Esc => "esc",
            Key::Backspace => "backspace",
        }
    }

    /// The bytes a terminal sends for the key.
    pub fn terminal_bytes(self) -> &'static [u8] {
        match self {
            Key::Enter => b"\r",
            Key::Tab => b"\t",
            Key::CtrlC => b"\x03",
            Key::CtrlD => b"\x04",
            Key::CtrlZ => b"\x1a",
            Key::Up => b"\x1b[A",
            Key::Down => b"\x1b[B",
            Key::Right => b"\x1b[C",
            Key::Left => b"\x1b[D",
            Key::Esc => b"\x1b",
            Key::Backspace => b"\x7f",
        }
    }
}

impl std::str::FromStr for Key {
    type Err = String;
    fn from_str(s: &str) -> Result<Key, String> {
        let want = s.trim().to_ascii_lowercase().replace(['_', '+'], "-");
        Key::ALL
            .into_iter()
            .find(|k| k.name() == want || (want == "return" && *k == Key::Enter))
            .ok_or_else(|| {
                let names: Vec<&str> = Key::ALL.iter().map(|k| k.name()).collect();
                format!("{s:?} is not a key; use one of {}", names.join(", "))
            })
    }
}

/// What to send to a running task's stdin or terminal: the text, then the keys, then
/// the end of input, in that order; and a new terminal size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct TaskInput {
    /// Text written as it is (no newline is added: end a line with the `enter` key).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_INPUT_CHARS)))]
    pub text: Option<String>,
    /// Keys pressed after the text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_INPUT_KEYS)))]
    pub keys: Vec<Key>,
    /// Ends the input after the text and keys: closes a pipe, or sends Ctrl-D to a
    /// terminal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub eof: bool,
    /// Resizes the task's terminal (its programs get `SIGWINCH`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize: Option<Terminal>,
    /// The attached terminal sending this (`meanwhile attach` makes one up). One
    /// terminal at a time writes to a task: while one's requests keep coming (at
    /// least every 10 s), another's are refused; input without `writer` is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 100)))]
    pub writer: Option<String>,
    /// With `writer`: it detaches, and another terminal may write at once (without
    /// `writer` it means nothing).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub detach: bool,
}

impl TaskInput {
    /// Text only.
    pub fn text(text: impl Into<String>) -> TaskInput {
        TaskInput {
            text: Some(text.into()),
            ..TaskInput::default()
        }
    }

    /// Checks it is not too much at once.
    pub fn check(&self) -> Result<(), SpecError> {
        if let Some(t) = &self.text {
            let n = t.chars().count();
            if n > MAX_INPUT_CHARS {
                return Err(SpecError {
                    field: "text",
                    message: format!(
                        "at most {MAX_INPUT_CHARS} characters at a time (MAX_INPUT_CHARS), got {n}; send it in parts"
                    ),
                });
            }
        }
        if self.keys.len() > MAX_INPUT_KEYS {
            return Err(SpecError {
                field: "keys",
                message: format!(
                    "at most {MAX_INPUT_KEYS} keys at a time (MAX_INPUT_KEYS), got {}",
                    self.keys.len()
                ),
            });
        }
        if let Some(r) = &self.resize {
            r.check("resize")?;
        }
        if let Some(w) = &self.writer
            && (w.is_empty() || w.chars().count() > 100)
        {
            return Err(SpecError {
                field: "writer",
                message: "must be 1 to 100 characters long".into(),
            });
        }
        Ok(())
    }
}

/// What an input request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InputSent {
    /// The task.
    pub id: TaskId,
    /// Bytes handed to its stdin or terminal.
    pub bytes: u64,
    /// True when its input was ended (`eof`).
    #[serde(default)]
    pub eof: bool,
}

/// A socket a task's processes listen on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Listener {
    /// The address it is bound to (`127.0.0.1`, `::`, `0.0.0.0`), or a Unix
    /// socket's path.
    pub address: String,
    /// The TCP port; absent for a Unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Where to reach it from this machine (`http://127.0.0.1:5173`); absent for a
    /// Unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Listener {
    /// A TCP listener on `address:port`, with the URL to reach it locally (a wildcard
    /// address is reached on loopback).
    pub fn tcp(address: std::net::IpAddr, port: u16) -> Listener {
        let host = match address {
            a if a.is_unspecified() && a.is_ipv4() => "127.0.0.1".to_string(),
            a if a.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V4(a) => a.to_string(),
            std::net::IpAddr::V6(a) => format!("[{a}]"),
        };
        Listener {
            address: address.to_string(),
            port: Some(port),
            url: Some(format!("http://{host}:{port}")),
        }
    }

    /// A Unix socket listening at `path`.
    pub fn unix(path: impl Into<String>) -> Listener {
        Listener {
            address: path.into(),
            port: None,
            url: None,
        }
    }

    /// Where to reach it, for messages: its URL, else its path.
    pub fn reach(&self) -> &str {
        self.url.as_deref().unwrap_or(&self.address)
    }
}

/// What a running task is seen doing: whether it waits for input, and where it
/// listens. Observed by the node running it; cleared when the attempt ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LiveState {
    /// Since when its processes wait, blocked reading their terminal or stdin with
    /// no output; absent while they are not waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Timestamp>,
    /// The last line it printed while waiting (`Proceed? [y/N]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The sockets its processes listen on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<Listener>,
}

impl LiveState {
    /// Nothing seen.
    pub fn is_empty(&self) -> bool {
        self.waiting_since.is_none() && self.listening.is_empty()
    }
}

/// The last line of `plain` (output with its escape sequences removed) as a person
/// would read it: carriage returns honoured, at most [`MAX_PROMPT_LEN`] bytes.
pub fn prompt_line(plain: &str) -> Option<String> {
    let line = plain
        .split('\n')
        .map(|l| l.rsplit('\r').find(|p| !p.trim().is_empty()).unwrap_or(""))
        .rfind(|l| !l.trim().is_empty())?;
    let mut line = line.trim().to_string();
    if line.len() > MAX_PROMPT_LEN {
        let mut cut = line.len() - MAX_PROMPT_LEN;
        while !line.is_char_boundary(cut) {
            cut += 1;
        }
        line = format!("…{}", &line[cut..]);
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sizes_parse_and_are_bounded() {
        assert_eq!(
            "120x40".parse::<Terminal>(),
            Ok(Terminal {
                cols: 120,
                rows: 40
            })
        );
        assert!("120".parse::<Terminal>().unwrap_err().contains("COLSxROWS"));
        assert!(
            "0x10"
                .parse::<Terminal>()
                .unwrap_err()
                .contains("1 to 1000")
        );
        assert!("5000x10".parse::<Terminal>().is_err());
    }

    #[test]
    fn keys_parse_by_name_and_say_which_exist() {
        assert_eq!("ctrl-c".parse::<Key>(), Ok(Key::CtrlC));
        assert_eq!("CTRL_C".parse::<Key>(), Ok(Key::CtrlC));
        assert_eq!("return".parse::<Key>(), Ok(Key::Enter));
        let e = "f13".parse::<Key>().unwrap_err();
        assert!(e.contains("enter, tab, ctrl-c"), "{e}");
        for k in Key::ALL {
            assert_eq!(k.name().parse::<Key>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
        }
    }

    #[test]
    fn too_much_input_at_once_is_refused() {
        assert!(TaskInput::default().check().is_ok());
        assert!(TaskInput::text("y").check().is_ok());
        let big = TaskInput::text("é".repeat(MAX_INPUT_CHARS + 1));
        assert!(
            big.check()
                .unwrap_err()
                .message
                .contains("send it in parts")
        );
        let keys = TaskInput {
            keys: vec![Key::Enter; MAX_INPUT_KEYS + 1],
            ..TaskInput::default()
        };
        assert_eq!(keys.check().unwrap_err().field, "keys");
    }

    #[test]
    fn listeners_have_a_local_url() {
        let l = Listener::tcp("0.0.0.0".parse().unwrap(), 5173);
        assert_eq!(l.url.as_deref(), Some("http://127.0.0.1:5173"));
        let l = Listener::tcp("::".parse().unwrap(), 80);
        assert_eq!(l.url.as_deref(), Some("http://[::1]:80"));
        assert_eq!(Listener::unix("/tmp/s").reach(), "/tmp/s");
    }

    #[test]
    fn the_prompt_is_the_last_visible_line() {
        assert_eq!(
            prompt_line("hello\nProceed? [y/N] ").as_deref(),
            Some("Proceed? [y/N]")
        );
        assert_eq!(prompt_line(">>> 42\r\n>>> ").as_deref(), Some(">>>"));
        assert_eq!(prompt_line("\n\n"), None);
        assert_eq!(prompt_line("50%\r100%\n").as_deref(), Some("100%"));
    }
}
