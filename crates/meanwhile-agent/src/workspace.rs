//! The directory the file tools are confined to, and the path checks that keep them
//! there: no `..`, no absolute path outside it, no symlink that leads out.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path given by the model was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// No path at all.
    #[error("the path is empty: give a path relative to the workspace {root}")]
    Empty {
        /// The workspace.
        root: String,
    },
    /// The path holds a NUL byte.
    #[error("the path {path:?} contains a NUL byte")]
    Nul {
        /// The path as given.
        path: String,
    },
    /// The path climbs with `..`.
    #[error(
        "the path {path:?} contains `..`, which is refused: give a path inside the workspace {root} without `..`"
    )]
    ParentDir {
        /// The path as given.
        path: String,
        /// The workspace.
        root: String,
    },
    /// An absolute path outside the workspace.
    #[error("the path {path:?} is outside the workspace {root}: only files under it can be used")]
    Outside {
        /// The path as given.
        path: String,
        /// The workspace.
        root: String,
    },
    /// A symlink on the way leads out of the workspace, or nowhere.
    #[error(
        "the path {path:?} goes through a symlink that leads out of the workspace {root} (to {target}), which is refused"
    )]
    SymlinkOut {
        /// The path as given.
        path: String,
        /// The workspace.
        root: String,
        /// Where the symlink leads, as far as it could be resolved.
        target: String,
    },
    /// The path could not be examined.
    #[error("{path:?}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A workspace: a directory, canonical, that the file tools may not leave.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The canonical root (symlinks resolved).
    root: PathBuf,
    /// The root as given, so absolute paths written through a symlinked form of it
    /// (`/tmp/...` on systems where `/tmp` is a link) are still recognised.
    given: PathBuf,
}

impl Workspace {
    /// A workspace at `root`, which must be an existing directory.
    pub fn new(root: &Path) -> io::Result<Workspace> {
        let given = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()?.join(root)
        };
        let canonical = std::fs::canonicalize(&given)?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Workspace {
            root: canonical,
            given,
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` relative to the root when it is inside, for messages.
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    /// Resolves a path given by the model to a path inside the workspace, or says why
    /// not. The file need not exist; every part of it that does exists inside.
    ///
    /// The check and the later use are not atomic: a process that swaps a directory
    /// for a symlink in between can still escape. The tools guard against a model's
    /// mistakes, not against a hostile process in the workspace.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, PathError> {
        let root = self.root.display().to_string();
        if path.trim().is_empty() {
            return Err(PathError::Empty { root });
        }
        if path.contains('\0') {
            return Err(PathError::Nul { path: path.into() });
        }
        let p = Path::new(path);
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(PathError::ParentDir {
                path: path.into(),
                root,
            });
        }
        let relative: PathBuf = if p.is_absolute() {
            let rel = p
                .strip_prefix(&self.root)
                .or_else(|_| p.strip_prefix(&self.given))
                .map_err(|_| PathError::Outside {
                    path: path.into(),
                    root: root.clone(),
                })?;
            rel.to_path_buf()
        } else {
            p.to_path_buf()
        };
        let parts: Vec<&std::ffi::OsStr> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s),
                _ => None,
            })
            .collect();
        // Find the deepest part of the path that exists and resolve its symlinks;
        // what follows it does not exist yet and so cannot be a link.
        for depth in (0..=parts.len()).rev() {
            let mut candidate = self.root.clone();
            candidate.extend(&parts[..depth]);
            match std::fs::canonicalize(&candidate) {
                Ok(real) => {
                    if !real.starts_with(&self.root) {
                        return Err(PathError::SymlinkOut {
                            path: path.into(),
                            root,
                            target: real.display().to_string(),
                        });
                    }
                    let mut out = real;
                    out.extend(&parts[depth..]);
                    return Ok(out);
                }
                Err(_) if std::fs::symlink_metadata(&candidate).is_ok() => {
                    // A link whose target is missing: writing through it would create
                    // the target wherever it points.
                    let target = std::fs::read_link(&candidate)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| "an unreadable target".into());
                    return Err(PathError::SymlinkOut {
                        path: path.into(),
                        root,
                        target,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
                Err(source) => {
                    return Err(PathError::Io {
                        path: path.into(),
                        source,
                    });
                }
            }
        }
        // The root itself always canonicalizes; this is reached only if it vanished.
        Err(PathError::Io {
            path: path.into(),
            source: io::Error::new(io::ErrorKind::NotFound, "the workspace is gone"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("src/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), ws.join("leak")).unwrap();
        std::os::unix::fs::symlink(dir.path(), ws.join("up")).unwrap();
        std::os::unix::fs::symlink(ws.join("src"), ws.join("inner")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), ws.join("dangling")).unwrap();
        let w = Workspace::new(&ws).unwrap();
        (dir, w)
    }

    #[test]
    fn paths_inside_resolve() {
        let (_d, ws) = setup();
        let root = ws.root().to_path_buf();
        let check = |p: &str, want: PathBuf| assert_eq!(ws.resolve(p).unwrap(), want, "{p}");
        check("src/a.txt", root.join("src/a.txt"));
        check("./src/a.txt", root.join("src/a.txt"));
        check("new/dir/file.rs", root.join("new/dir/file.rs"));
        check("inner/a.txt", root.join("src/a.txt"));
        check(
            &root.join("src/b.txt").display().to_string(),
            root.join("src/b.txt"),
        );
        check(".", root.clone());
    }

    #[test]
    fn escapes_are_refused_with_clear_errors() {
        let (_d, ws) = setup();
        let check = |p: &str, want: &str| {
            let e = ws.resolve(p).unwrap_err().to_string();
            assert!(e.contains(want), "{p}: {e}");
        };
        check("../secret", "contains `..`");
        check("src/../../secret", "contains `..`");
        check("/etc/passwd", "outside the workspace");
        check("leak", "symlink that leads out");
        check("up/secret", "symlink that leads out");
        check("up/new-file", "symlink that leads out");
        check("dangling", "symlink that leads out");
        check("", "empty");
    }
}
