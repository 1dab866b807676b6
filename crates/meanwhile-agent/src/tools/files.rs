//! `read_file`, `write_file` and `edit_file`, confined to the workspace.

use super::{ToolBox, ToolError, defs, parse_args};
use serde::Deserialize;
use serde_json::Value;

/// Lines read when the model gives no limit.
const DEFAULT_LINES: usize = 2000;
/// Longer lines are cut: minified files would otherwise fill the answer with one line.
const MAX_LINE_CHARS: usize = 2000;
/// Files larger than this are not read whole; bash (`sed -n`, `head`) can page them.
const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    path: String,
    old_text: String,
    new_text: String,
}

async fn read_text(
    tb: &ToolBox,
    shown: &str,
    path: &std::path::Path,
) -> Result<Vec<u8>, ToolError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(ToolError::io(format!("cannot read {shown}")))?;
    if meta.is_dir() {
        return Err(ToolError::Io {
            what: format!("cannot read {shown}"),
            source: std::io::Error::other("it is a directory; list it with bash (ls)"),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ToolError::Io {
            what: format!("cannot read {shown}"),
            source: std::io::Error::other(format!(
                "it is {} bytes, too large to read whole; page through it with bash (sed -n '100,200p' {shown})",
                meta.len()
            )),
        });
    }
    let _ = tb;
    tokio::fs::read(path)
        .await
        .map_err(ToolError::io(format!("cannot read {shown}")))
}

pub(crate) async fn read_file(tb: &ToolBox, args: Value) -> Result<String, ToolError> {
    let tool = defs::READ_FILE;
    let a: ReadArgs = parse_args(tool, args)?;
    let path = tb.workspace.resolve(&a.path)?;
    let shown = tb.workspace.display(&path);
    let bytes = read_text(tb, &shown, &path).await?;
    if bytes.is_empty() {
        return Ok(format!("{shown} is empty."));
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Ok(format!(
            "{shown} is a binary file of {} bytes; not shown (inspect it with bash: file, xxd | head)",
            bytes.len()
        ));
    }
    let text = String::from_utf8_lossy(&bytes);
    let offset = a.offset.unwrap_or(1).max(1);
    let limit = a.limit.unwrap_or(DEFAULT_LINES).max(1);
    let total = text.lines().count();
    if offset > total {
        return Err(ToolError::args(
            tool,
            format!("offset {offset} is past the end: {shown} has {total} lines"),
        ));
    }
    let mut out = String::new();
    let mut last = offset - 1;
    let mut cut_for_size = false;
    for (i, line) in text.lines().enumerate().skip(offset - 1).take(limit) {
        let n = i + 1;
        let line = if line.chars().count() > MAX_LINE_CHARS {
            let cut: String = line.chars().take(MAX_LINE_CHARS).collect();
            format!("{cut} [... line cut at {MAX_LINE_CHARS} characters]")
        } else {
            line.to_string()
        };
        let entry = format!("{n:>6}\t{line}\n");
        if out.len() + entry.len() > tb.output_limit && n > offset {
            cut_for_size = true;
            break;
        }
        out.push_str(&entry);
        last = n;
    }
    if last < total {
        let why = if cut_for_size {
            " (the answer reached its size limit)"
        } else {
            ""
        };
        out.push_str(&format!(
            "[lines {offset}-{last} of {total} shown{why}; read on with offset={}]\n",
            last + 1
        ));
    }
    Ok(out)
}

pub(crate) async fn write_file(tb: &ToolBox, args: Value) -> Result<String, ToolError> {
    let a: WriteArgs = parse_args(defs::WRITE_FILE, args)?;
    let path = tb.workspace.resolve(&a.path)?;
    let shown = tb.workspace.display(&path);
    if path.is_dir() {
        return Err(ToolError::Io {
            what: format!("cannot write {shown}"),
            source: std::io::Error::other("it is a directory"),
        });
    }
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(ToolError::io(format!(
                "cannot create the directory of {shown}"
            )))?;
    }
    let existed = path.exists();
    tokio::fs::write(&path, a.content.as_bytes())
        .await
        .map_err(ToolError::io(format!("cannot write {shown}")))?;
    Ok(format!(
        "{} {shown}: {} bytes, {} lines.",
        if existed { "Replaced" } else { "Created" },
        a.content.len(),
        a.content.lines().count()
    ))
}

/// Replaces one occurrence of the old text. `again` marks a call made a second time
/// (a resumed session): when the old text is gone and the new text is there, the
/// edit was made before, and is not made twice.
pub(crate) async fn edit_file(tb: &ToolBox, args: Value, again: bool) -> Result<String, ToolError> {
    let tool = defs::EDIT_FILE;
    let a: EditArgs = parse_args(tool, args)?;
    if a.old_text.is_empty() {
        return Err(ToolError::args(
            tool,
            "old_text must not be empty; to write a whole file use write_file",
        ));
    }
    let path = tb.workspace.resolve(&a.path)?;
    let shown = tb.workspace.display(&path);
    let bytes = read_text(tb, &shown, &path).await?;
    let text = String::from_utf8(bytes).map_err(|_| ToolError::Io {
        what: format!("cannot edit {shown}"),
        source: std::io::Error::other("it is not UTF-8 text"),
    })?;
    let count = text.matches(a.old_text.as_str()).count();
    match count {
        0 if again && !a.new_text.is_empty() && text.contains(a.new_text.as_str()) => {
            return Ok(format!(
                "Edited {shown}: the replacement was already in place (made before the session resumed)."
            ));
        }
        0 => return Err(ToolError::EditNoMatch { path: shown }),
        1 => {}
        count => return Err(ToolError::EditAmbiguous { path: shown, count }),
    }
    let at = text.find(a.old_text.as_str()).unwrap_or(0);
    let line = text[..at].matches('\n').count() + 1;
    let edited = text.replacen(a.old_text.as_str(), &a.new_text, 1);
    tokio::fs::write(&path, edited.as_bytes())
        .await
        .map_err(ToolError::io(format!("cannot write {shown}")))?;
    Ok(format!(
        "Edited {shown}: replaced {} lines at line {line} with {} lines.",
        a.old_text.lines().count().max(1),
        a.new_text.lines().count()
    ))
}
