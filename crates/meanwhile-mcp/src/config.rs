//! What an MCP server is told: which session it speaks for, and whether it may
//! start sub-agents.

use std::path::{Path, PathBuf};

/// The HTTP header naming the session of a request to the streamable HTTP endpoint
/// (a `session` query parameter does the same, for clients that cannot set headers).
pub const SESSION_HEADER: &str = meanwhile_core::http::SESSION_HEADER;

/// Longest session name accepted from a client.
const MAX_SESSION_LEN: usize = 128;

/// The settings of one MCP server.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// The session that tasks started through this server notify, and whose
    /// notices ride along on tool results. Over HTTP, a request may name another
    /// (see [`SESSION_HEADER`]).
    pub session: String,
    /// How `spawn_agent` starts sub-agents; the tool is offered only when set.
    pub spawn_agent: Option<SpawnAgent>,
    /// Where `background_run` runs a command that names no `cwd`, and what a
    /// relative `cwd` is relative to: the agent's project for `meanwhile mcp`. When
    /// absent, the backend's default applies and relative paths are refused.
    pub cwd: Option<PathBuf>,
}

impl McpConfig {
    /// A server for `session`, without `spawn_agent`.
    pub fn new(session: impl Into<String>) -> McpConfig {
        McpConfig {
            session: session.into(),
            spawn_agent: None,
            cwd: None,
        }
    }
}

/// Where and with what `spawn_agent` runs sub-agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnAgent {
    /// The directory a sub-agent works in.
    pub workspace: PathBuf,
    /// The provider name (`anthropic`, `openai`, ...); the executor's default when absent.
    pub provider: Option<String>,
    /// The model, unless the call names one; the executor's default when absent.
    pub model: Option<String>,
}

impl SpawnAgent {
    /// `spawn_agent` settings for `workspace` when the agent's configuration (the
    /// environment and `home`'s `config.toml`) names a provider whose key is at hand;
    /// `None` otherwise, so that a model is never offered a tool whose every call
    /// would fail.
    pub fn detect(home: &Path, workspace: &Path) -> Option<SpawnAgent> {
        let file = home.join("config.toml");
        let overrides = meanwhile_agent::AgentOverrides {
            workspace: Some(workspace.to_path_buf()),
            config_file: file.is_file().then_some(file),
            ..Default::default()
        };
        let env = |name: &str| std::env::var(name).ok();
        let config = meanwhile_agent::AgentConfig::resolve(&overrides, &env).ok()?;
        config.build_provider().ok()?;
        Some(SpawnAgent {
            workspace: workspace.to_path_buf(),
            provider: Some(config.provider.to_string()),
            model: Some(config.model),
        })
    }
}

/// The session of an MCP server started in `cwd`: `mcp-<dirname>-<hash of the path>`.
///
/// The same directory always gives the same name, so an agent restarted in its
/// project hears how the tasks of its previous run ended; two projects with the same
/// directory name still get different sessions.
pub fn default_session(cwd: &Path) -> String {
    let name: String = cwd
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".to_string())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let hash = fnv1a(cwd.as_os_str().as_encoded_bytes());
    format!("mcp-{name}-{:08x}", (hash >> 32) as u32 ^ hash as u32)
}

/// FNV-1a: stable across Rust releases and platforms, unlike `DefaultHasher`, so
/// a session name never changes with the binary that computes it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `name` is usable as a session name given by a client: 1 to 128 printable
/// characters without spaces, so it reads well in listings and URLs.
pub fn valid_session(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SESSION_LEN
        && name.chars().all(|c| {
            c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_session_is_stable_and_tells_directories_apart() {
        let a = default_session(Path::new("/home/ann/src/shop"));
        assert_eq!(a, default_session(Path::new("/home/ann/src/shop")));
        assert!(a.starts_with("mcp-shop-"), "{a}");
        assert_eq!(a.len(), "mcp-shop-".len() + 8);
        let b = default_session(Path::new("/home/bob/src/shop"));
        assert_ne!(a, b);
        let odd = default_session(Path::new("/tmp/my project ✓"));
        assert!(odd.starts_with("mcp-my_project__-"), "{odd}");
        assert!(valid_session(&odd));
        assert!(default_session(Path::new("/")).starts_with("mcp-root-"));
    }

    #[test]
    fn session_names_from_clients_are_checked() {
        assert!(valid_session("review-bot"));
        assert!(!valid_session(""));
        assert!(!valid_session("a b"));
        assert!(!valid_session("line\nbreak"));
        assert!(!valid_session(&"x".repeat(200)));
    }
}
