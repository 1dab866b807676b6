//! Where meanwhile keeps its home when `MEANWHILE_HOME` does not say.

use std::path::PathBuf;

/// `$MEANWHILE_HOME`, else the platform's data directory plus `meanwhile`
/// (`$XDG_DATA_HOME/meanwhile`, `~/.local/share/meanwhile`, or on macOS
/// `~/Library/Application Support/meanwhile`).
pub fn default_home() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(h) = var("MEANWHILE_HOME") {
        return PathBuf::from(h);
    }
    let home = var("HOME").map(PathBuf::from);
    if cfg!(target_os = "macos")
        && let Some(h) = &home
    {
        return h.join("Library/Application Support/meanwhile");
    }
    if let Some(x) = var("XDG_DATA_HOME").map(PathBuf::from)
        && x.is_absolute()
    {
        return x.join("meanwhile");
    }
    match home {
        Some(h) => h.join(".local/share/meanwhile"),
        None => PathBuf::from("/tmp/meanwhile"),
    }
}
