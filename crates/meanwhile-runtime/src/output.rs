//! Reading a task's output log: cursors, tail, grep, head-and-tail elision, ANSI
//! stripping. Every reader streams the file in fixed-size blocks, so memory stays
//! bounded by the answer's size limit however large the log is.

use memchr::memchr_iter;
use regex::bytes::Regex;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The most text one answer carries when no `max_bytes` is given; the cursor then
/// points at the rest.
pub const DEFAULT_PAGE_BYTES: usize = 1 << 20;
/// Lines longer than this are cut when filtering with `grep` or `tail`.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
const BLOCK: usize = 64 * 1024;

/// The text part of an answer, before the task's state is attached.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Slice {
    pub text: Vec<u8>,
    pub start: u64,
    pub cursor: u64,
    pub total: u64,
    pub elided: u64,
    pub skipped_lines: u64,
    pub more: bool,
    /// Bytes the log dropped from its middle, over its task's `max_output`.
    pub dropped: u64,
}

/// A compiled query.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub since: u64,
    pub tail: Option<usize>,
    pub grep: Option<&'a Regex>,
    pub max_bytes: Option<usize>,
    pub strip_ansi: bool,
    /// The task's secrets, masked in what is read and in what `grep` sees.
    pub mask: &'a Mask,
}

/// The values of a task's secrets, each shown as `***` wherever its output is read
/// (answers, grep, notices, prompts), as CI systems mask theirs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mask {
    /// Longest first, so one inside another is masked as the longer.
    secrets: Vec<Vec<u8>>,
}

impl Mask {
    /// The mask of a task's secrets.
    pub(crate) fn of(task: &meanwhile_core::TaskRecord, key: &crate::sealed::SecretsKey) -> Mask {
        let mut secrets: Vec<Vec<u8>> = task
            .spec
            .secrets
            .values()
            // A value that does not open was never given to the task either.
            .map(|s| key.open(s.expose()).unwrap_or_default().into_bytes())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Mask { secrets }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret in it masked.
    pub(crate) fn apply(&self, text: &[u8]) -> Vec<u8> {
        self.window(&[], text, &[])
    }

    /// [`Mask::apply`] for text.
    pub(crate) fn apply_str(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        String::from_utf8_lossy(&self.apply(text.as_bytes())).into_owned()
    }

    /// `text` masked, seen between the bytes `before` and `after` it, so that a
    /// secret cut by its edges is masked too.
    fn window(&self, before: &[u8], text: &[u8], after: &[u8]) -> Vec<u8> {
        if self.is_empty() {
            return text.to_vec();
        }
        let mut all = Vec::with_capacity(before.len() + text.len() + after.len());
        all.extend_from_slice(before);
        all.extend_from_slice(text);
        all.extend_from_slice(after);
        let mut covered = vec![false; all.len()];
        for s in &self.secrets {
            for at in memchr::memmem::find_iter(&all, s) {
                covered[at..at + s.len()].iter_mut().for_each(|c| *c = true);
            }
        }
        let (from, to) = (before.len(), before.len() + text.len());
        let mut out = Vec::with_capacity(text.len());
        for i in from..to {
            if !covered[i] {
                out.push(all[i]);
            } else if i == from || !covered[i - 1] {
                out.extend_from_slice(meanwhile_core::SECRET_MASK.as_bytes());
            }
        }
        out
    }

    /// `text`, the bytes at `start` of the log `f`, masked with the bytes around it.
    fn in_file(&self, f: &mut File, start: u64, text: &[u8], total: u64) -> io::Result<Vec<u8>> {
        let margin = self.secrets.first().map_or(0, |s| s.len() - 1) as u64;
        let from = start.saturating_sub(margin);
        let mut before = vec![0u8; (start - from) as usize];
        let got = read_at(f, from, &mut before)?;
        before.truncate(got);
        let end = start + text.len() as u64;
        let mut after = vec![0u8; (total.saturating_sub(end)).min(margin) as usize];
        let got = read_at(f, end, &mut after)?;
        after.truncate(got);
        Ok(self.window(&before, text, &after))
    }
}

/// The middle a log dropped over its task's `max_output` (`watch.rs` punches it out
/// of the file, which keeps its size, so every offset keeps its meaning, and records
/// it beside the log): the bytes in `[from, to)` are gone, and a read of them
/// answers [`Dropped::marker`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub from: u64,
    pub to: u64,
}

impl Dropped {
    /// Where the log at `log` records its dropped middle: `output.dropped` beside
    /// it, `FROM TO`, written (then renamed into place) by [`drop_middle`].
    pub(crate) fn record_path(log: &Path) -> std::path::PathBuf {
        log.with_extension("dropped")
    }

    /// The dropped middle of the log at `log`, of `total` bytes, as recorded.
    pub(crate) fn of(log: &Path, total: u64) -> io::Result<Option<Dropped>> {
        // No bound is below 64K: a smaller log has dropped nothing, and most logs
        // are read (for an end's notice, say) without looking for a record.
        if total <= meanwhile_core::MIN_MAX_OUTPUT {
            return Ok(None);
        }
        let text = match std::fs::read_to_string(Dropped::record_path(log)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(from)), Some(Ok(to))) if from < to && to <= total => {
                Ok(Some(Dropped { from, to }))
            }
            // A record that does not fit the log (it was removed and made again):
            // nothing is known to be dropped.
            _ => Ok(None),
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.to - self.from
    }

    /// The line a read shows in place of the dropped bytes; `after_line` says whether
    /// the kept head ends with a newline.
    pub(crate) fn marker(&self, after_line: bool) -> Vec<u8> {
        format!(
            "{}[meanwhile: {} bytes of output dropped: over max_output]\n",
            if after_line { "" } else { "\n" },
            self.bytes()
        )
        .into_bytes()
    }

    /// The marker, looking at the byte before the dropped middle.
    fn marker_in(&self, f: &mut File) -> io::Result<Vec<u8>> {
        let mut last = [b'\n'];
        if self.from > 0 {
            read_at(f, self.from - 1, &mut last)?;
        }
        Ok(self.marker(last[0] == b'\n'))
    }
}

/// The head a log bounded by `max_output` keeps (or half the bound, if smaller).
const HEAD_KEPT: u64 = 1 << 20;

/// Drops the middle of the log `f` if it grew past `max` bytes kept: the file keeps
/// its head and its newest part, and the bytes between become a hole (punched, so
/// the file keeps its size, every offset its meaning, every reader's cursor its
/// place). `dropped_to` is where the middle dropped before ends (0 for none).
/// Answers where the dropped middle ends now, when it grew. Dropped in steps of an
/// eighth of `max`, so a task writing steadily costs one punch per step.
pub(crate) fn drop_middle(
    f: &File,
    meta: &std::fs::Metadata,
    log: &Path,
    dropped_to: u64,
    max: u64,
) -> io::Result<Option<u64>> {
    let len = meta.len();
    let block = std::os::unix::fs::MetadataExt::blksize(meta).max(512);
    let head = ((max / 2).min(HEAD_KEPT) / block * block).max(block);
    let kept = len - dropped_to.saturating_sub(head);
    let step = (max / 8).clamp(64 << 10, 64 << 20);
    if kept <= max + step {
        return Ok(None);
    }
    let to = len.saturating_sub(max - head) / block * block;
    let from = dropped_to.max(head);
    if to <= from {
        return Ok(None);
    }
    rustix::fs::fallocate(
        f,
        rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
        from,
        to - from,
    )?;
    // Readers learn of it from the record, never from the file's holes (which a
    // file system may report late, or not at all).
    let record = Dropped::record_path(log);
    let tmp = record.with_extension("dropped.tmp");
    std::fs::write(&tmp, format!("{head} {to}\n"))?;
    std::fs::rename(&tmp, &record)?;
    Ok(Some(to))
}

/// An open log: the file, its size and its dropped middle.
struct Log {
    f: File,
    total: u64,
    dropped: Option<Dropped>,
}

fn open(path: &Path) -> io::Result<Option<Log>> {
    match File::open(path) {
        Ok(f) => {
            let total = f.metadata()?.len();
            let dropped = Dropped::of(path, total)?;
            Ok(Some(Log { f, total, dropped }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_at(f: &mut File, at: u64, buf: &mut [u8]) -> io::Result<usize> {
    f.seek(SeekFrom::Start(at))?;
    let mut got = 0;
    while got < buf.len() {
        let n = f.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Moves `cut` back to the start of a UTF-8 character.
fn char_boundary(bytes: &[u8], mut cut: usize) -> usize {
    while cut > 0 && cut < bytes.len() && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    cut
}

/// Keeps the head and tail of `text` within `max`, returning the bytes elided.
fn elide(text: &mut Vec<u8>, max: usize) -> u64 {
    if text.len() <= max {
        return 0;
    }
    let head = char_boundary(text, max / 2);
    let tail_start = char_boundary(text, text.len() - (max - max / 2));
    let elided = (tail_start - head) as u64;
    let marker = format!("\n[... {elided} bytes elided ...]\n");
    let mut out = Vec::with_capacity(max + marker.len());
    out.extend_from_slice(&text[..head]);
    out.extend_from_slice(marker.as_bytes());
    out.extend_from_slice(&text[tail_start..]);
    *text = out;
    elided
}

/// Removes ANSI escape sequences (CSI, OSC, DCS, APC, SOS/PM and the rest of
/// ECMA-48) as a terminal's parser consumes them, keeping text, newlines, tabs and
/// carriage returns; other control characters go too.
pub(crate) fn strip_ansi(input: &[u8]) -> Vec<u8> {
    /// Collects what a terminal would print.
    struct Plain(Vec<u8>);
    impl vte::Perform for Plain {
        fn print(&mut self, c: char) {
            let mut buf = [0u8; 4];
            self.0.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        fn execute(&mut self, byte: u8) {
            if matches!(byte, b'\n' | b'\t' | b'\r') {
                self.0.push(byte);
            }
        }
    }
    let mut plain = Plain(Vec::with_capacity(input.len()));
    let mut parser = vte::Parser::new();
    // A C1 control, as a raw byte of 0x80 to 0x9f outside any UTF-8 character or as
    // the characters U+0080 to U+009F (0x9b is CSI), goes to the parser in its 7-bit
    // form: ESC and the code less 0x40.
    for chunk in input.utf8_chunks() {
        let valid = chunk.valid();
        if memchr::memchr(0xc2, valid.as_bytes()).is_none() {
            parser.advance(&mut plain, valid.as_bytes());
        } else {
            let mut from = 0;
            for (i, c) in valid.char_indices() {
                if ('\u{80}'..='\u{9f}').contains(&c) {
                    parser.advance(&mut plain, &valid.as_bytes()[from..i]);
                    parser.advance(&mut plain, &[0x1b, (c as u32 - 0x40) as u8]);
                    from = i + c.len_utf8();
                }
            }
            parser.advance(&mut plain, &valid.as_bytes()[from..]);
        }
        for &b in chunk.invalid() {
            if (0x80..=0x9f).contains(&b) {
                parser.advance(&mut plain, &[0x1b, b - 0x40]);
            } else {
                parser.advance(&mut plain, &[b]);
            }
        }
    }
    plain.0
}

/// Calls `f` with each line (without its newline, cut at [`MAX_LINE_BYTES`]) of
/// `[from, to)` and the offset just past it; a final line without a newline counts.
/// Stops early when `f` returns false. Returns the offset reached.
fn for_each_line(
    f: &mut File,
    from: u64,
    to: u64,
    dropped: Option<Dropped>,
    mut each: impl FnMut(&[u8], u64, bool) -> bool,
) -> io::Result<u64> {
    let Some(d) = dropped.filter(|d| d.to > from && d.from < to) else {
        return lines_in(f, from, to, true, &mut each);
    };
    // The lines before the dropped middle (the last one ends there), then after it.
    if from < d.from {
        let mut all = true;
        let reached = lines_in(f, from, d.from, false, &mut |l, end, c| {
            all = each(l, end, c);
            all
        })?;
        if !all {
            return Ok(reached);
        }
    }
    lines_in(f, from.max(d.to), to, true, &mut each)
}

/// [`for_each_line`] over a range without a dropped middle; a last line without a
/// newline is complete unless `open_end` (more may come).
fn lines_in(
    f: &mut File,
    from: u64,
    to: u64,
    open_end: bool,
    each: &mut impl FnMut(&[u8], u64, bool) -> bool,
) -> io::Result<u64> {
    let mut buf = vec![0u8; BLOCK];
    let mut line: Vec<u8> = Vec::new();
    let mut line_len = 0usize;
    let mut pos = from;
    while pos < to {
        let want = ((to - pos) as usize).min(BLOCK);
        let n = read_at(f, pos, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        let block = &buf[..n];
        let mut start = 0;
        for nl in memchr_iter(b'\n', block) {
            let piece = &block[start..nl];
            let room = MAX_LINE_BYTES.saturating_sub(line_len);
            line.extend_from_slice(&piece[..piece.len().min(room)]);
            let end = pos + nl as u64 + 1;
            if !each(&line, end, true) {
                return Ok(end);
            }
            line.clear();
            line_len = 0;
            start = nl + 1;
        }
        let piece = &block[start..];
        let room = MAX_LINE_BYTES.saturating_sub(line_len);
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        line_len += piece.len();
        pos += n as u64;
    }
    if line_len > 0 {
        each(&line, pos, !open_end);
    }
    Ok(pos)
}

impl Reader<'_> {
    /// Reads the log at `path` as the query says.
    pub(crate) fn read(&self, path: &Path) -> io::Result<Slice> {
        let Some(Log {
            mut f,
            total,
            dropped,
        }) = open(path)?
        else {
            return Ok(Slice::default());
        };
        let start = self.since.min(total);
        let mut s = match (self.grep, self.tail) {
            (None, None) => self.plain(&mut f, start, total, dropped)?,
            (None, Some(n)) => self.tail_lines(&mut f, start, total, n, dropped)?,
            (Some(re), _) => self.grep_lines(&mut f, start, total, re, dropped)?,
        };
        s.total = total;
        s.dropped = dropped.map_or(0, |d| d.bytes());
        if !self.mask.is_empty() {
            // A page of the log as it is: a secret across its edges is masked too.
            // (A page across a dropped middle is not the file's bytes in a row.)
            let whole = dropped.is_none_or(|d| d.to <= s.start || d.from >= s.cursor);
            s.text = if self.grep.is_none() && self.tail.is_none() && s.elided == 0 && whole {
                self.mask.in_file(&mut f, s.start, &s.text, total)?
            } else {
                self.mask.apply(&s.text)
            };
        }
        if self.strip_ansi {
            s.text = strip_ansi(&s.text);
            if !self.mask.is_empty() {
                s.text = self.mask.apply(&s.text);
            }
        }
        // `plain` and `grep_lines` keep head and tail within max_bytes themselves;
        // a tail of long lines may still be over it.
        if let (Some(max), Some(_), None) = (self.max_bytes, self.tail, self.grep) {
            s.elided += elide(&mut s.text, max);
        }
        Ok(s)
    }

    fn page_limit(&self) -> usize {
        // With max_bytes the middle is elided, so the whole range can be consumed
        // while only its head and tail are kept.
        DEFAULT_PAGE_BYTES
    }

    fn plain(
        &self,
        f: &mut File,
        start: u64,
        total: u64,
        dropped: Option<Dropped>,
    ) -> io::Result<Slice> {
        let len = total - start;
        // What lies ahead of `start`: the dropped middle, if it is not behind.
        let dropped = dropped.filter(|d| d.to > start);
        if let Some(max) = self.max_bytes
            && len as usize > max
        {
            let half = max / 2;
            // The head stops where the dropped middle begins; the tail never
            // reaches back into it (it is elided with the rest of the middle).
            let head_end = dropped.map_or(total, |d| d.from.max(start));
            let mut head = vec![0u8; half.min((head_end - start) as usize)];
            let got = read_at(f, start, &mut head)?;
            head.truncate(got);
            let tail_from = (total - (max - half) as u64).max(dropped.map_or(0, |d| d.to));
            let mut tail = vec![0u8; (total - tail_from) as usize];
            let got = read_at(f, tail_from, &mut tail)?;
            tail.truncate(got);
            let elided = tail_from - (start + head.len() as u64);
            let mut text = head;
            text.extend_from_slice(format!("\n[... {elided} bytes elided ...]\n").as_bytes());
            text.extend_from_slice(&tail);
            return Ok(Slice {
                text,
                start,
                cursor: total,
                elided,
                ..Slice::default()
            });
        }
        if let Some(d) = dropped {
            return self.plain_across(f, start, total, d);
        }
        let page = self.page_limit();
        let take = (len as usize).min(page);
        let mut text = vec![0u8; take];
        let got = read_at(f, start, &mut text)?;
        text.truncate(got);
        let mut more = false;
        if (len as usize) > page {
            // End the page on a line boundary when one is near, else on a character.
            let cut = match text[page.saturating_sub(4096)..]
                .iter()
                .rposition(|&b| b == b'\n')
            {
                Some(p) => page.saturating_sub(4096) + p + 1,
                None => char_boundary(&text, page),
            };
            text.truncate(cut);
            more = true;
        }
        let cursor = start + text.len() as u64;
        Ok(Slice {
            text,
            start,
            cursor,
            more,
            ..Slice::default()
        })
    }

    /// A page of `[start, total)` across the dropped middle `d`: what is kept before
    /// it, its marker (a read from inside it starts there), what follows it.
    fn plain_across(&self, f: &mut File, start: u64, total: u64, d: Dropped) -> io::Result<Slice> {
        let before = if start < d.from {
            self.plain(f, start, d.from, None)?
        } else {
            Slice::default()
        };
        if before.more {
            return Ok(Slice { start, ..before });
        }
        let mut text = before.text;
        // A read from inside the dropped middle starts a line with the marker.
        let marker = if start < d.from {
            d.marker_in(f)?
        } else {
            d.marker(true)
        };
        text.extend_from_slice(&marker);
        let after = Reader {
            max_bytes: None,
            ..*self
        }
        .plain(f, d.to, total, None)?;
        // One page, whichever side it ends on.
        let room = self.page_limit().saturating_sub(text.len());
        let (after_text, cursor, more) = if after.text.len() > room {
            let cut = char_boundary(&after.text, room);
            (&after.text[..cut], d.to + cut as u64, true)
        } else {
            (&after.text[..], after.cursor, after.more)
        };
        text.extend_from_slice(after_text);
        Ok(Slice {
            text,
            start,
            cursor,
            more,
            ..Slice::default()
        })
    }

    fn tail_lines(
        &self,
        f: &mut File,
        start: u64,
        total: u64,
        n: usize,
        dropped: Option<Dropped>,
    ) -> io::Result<Slice> {
        let limit = self
            .max_bytes
            .map_or(self.page_limit(), |m| m.max(self.page_limit()));
        // Walk back from the end block by block until n line breaks are behind us,
        // but no further than what is kept (plus a block): lines that begin before
        // that are cut anyway, and a gigabyte without a line break must not be read
        // back to find where its line began.
        // Nor into a dropped middle: lines are kept after it only.
        let dropped = dropped.filter(|d| d.to > start && d.to <= total);
        let floor = start
            .max(total.saturating_sub((limit + BLOCK) as u64))
            .max(dropped.map_or(0, |d| d.to));
        let mut from = total;
        let mut newlines = 0usize;
        let mut buf = vec![0u8; BLOCK];
        // A trailing newline ends the last line rather than starting an empty one.
        let mut skip_last = true;
        'outer: while from > floor && n > 0 {
            let size = ((from - floor) as usize).min(BLOCK);
            let at = from - size as u64;
            let got = read_at(f, at, &mut buf[..size])?;
            for i in (0..got).rev() {
                if buf[i] == b'\n' {
                    if skip_last && at + i as u64 == total - 1 {
                        continue;
                    }
                    newlines += 1;
                    if newlines == n {
                        from = at + i as u64 + 1;
                        break 'outer;
                    }
                }
            }
            skip_last = false;
            from = at;
        }
        if n == 0 {
            from = total;
        }
        let keep_from = from.max(total.saturating_sub(limit as u64));
        let mut text = vec![0u8; (total - keep_from) as usize];
        let got = read_at(f, keep_from, &mut text)?;
        text.truncate(got);
        if let Some(d) = dropped
            && from == d.to
            && newlines < n
        {
            // Fewer lines than asked are kept: say where the rest went.
            let mut marked = d.marker(true);
            marked.append(&mut text);
            text = marked;
        }
        Ok(Slice {
            text,
            start: from,
            cursor: total,
            elided: keep_from - from,
            ..Slice::default()
        })
    }

    fn grep_lines(
        &self,
        f: &mut File,
        start: u64,
        total: u64,
        re: &Regex,
        dropped: Option<Dropped>,
    ) -> io::Result<Slice> {
        let limit = self.max_bytes.unwrap_or(self.page_limit());
        let keep_head = self.max_bytes.is_some() && self.tail.is_none();
        let mut head: Vec<u8> = Vec::new();
        let mut tail: VecDeque<Vec<u8>> = VecDeque::new();
        let mut tail_bytes = 0usize;
        let mut skipped = 0u64;
        let mut elided = 0u64;
        let mut cursor = start;
        let mut more = false;
        let paging = self.max_bytes.is_none() && self.tail.is_none();
        let reached = for_each_line(f, start, total, dropped, |line, end, _complete| {
            // grep sees what a reader may: never a secret.
            let masked;
            let line = if self.mask.is_empty() {
                line
            } else {
                masked = self.mask.apply(line);
                &masked
            };
            let plain;
            let subject: &[u8] = if self.strip_ansi {
                plain = strip_ansi(line);
                &plain
            } else {
                line
            };
            if !re.is_match(subject) {
                skipped += 1;
                cursor = end;
                return true;
            }
            let mut l = line.to_vec();
            l.push(b'\n');
            if paging {
                if head.len() + l.len() > limit && !head.is_empty() {
                    more = true;
                    return false;
                }
                head.extend_from_slice(&l);
                cursor = end;
                return true;
            }
            cursor = end;
            if keep_head && head.len() + l.len() <= limit / 2 {
                head.extend_from_slice(&l);
                return true;
            }
            tail_bytes += l.len();
            tail.push_back(l);
            let max_lines = self.tail.unwrap_or(usize::MAX);
            let max_tail = if keep_head { limit - limit / 2 } else { limit };
            while tail.len() > max_lines || (tail_bytes > max_tail && tail.len() > 1) {
                if let Some(old) = tail.pop_front() {
                    tail_bytes -= old.len();
                    if tail.len() >= max_lines {
                        continue;
                    }
                    elided += old.len() as u64;
                }
            }
            true
        })?;
        if !more {
            cursor = reached.max(cursor);
        }
        let mut text = head;
        if elided > 0 && keep_head {
            text.extend_from_slice(
                format!("[... {elided} bytes of matching lines elided ...]\n").as_bytes(),
            );
        }
        for l in tail {
            text.extend_from_slice(&l);
        }
        Ok(Slice {
            text,
            start,
            cursor,
            elided,
            skipped_lines: skipped,
            more,
            ..Slice::default()
        })
    }
}

/// Looks for the first complete line in `[from, to)` matching `re`. Returns the line
/// and the offset scanned up to, so the next search resumes there. A trailing line
/// without a newline is left for later unless `include_partial` (the task ended).
pub(crate) fn find_match(
    path: &Path,
    from: u64,
    re: &Regex,
    include_partial: bool,
    mask: &Mask,
) -> io::Result<(Option<String>, u64)> {
    let Some(Log {
        mut f,
        total,
        dropped,
    }) = open(path)?
    else {
        return Ok((None, from));
    };
    let mut found = None;
    let mut scanned = from;
    for_each_line(
        &mut f,
        from.min(total),
        total,
        dropped,
        |line, end, complete| {
            if !complete && !include_partial {
                // Rescanned next time, once the line is whole.
                return false;
            }
            scanned = end;
            let line = mask.apply(line);
            if re.is_match(&strip_ansi(&line)) {
                found = Some(String::from_utf8_lossy(&line).into_owned());
                return false;
            }
            true
        },
    )?;
    Ok((found, scanned))
}

/// The last `lines` lines of the log (at most `max_bytes`), ANSI stripped, for notices.
pub(crate) fn last_lines(
    path: &Path,
    lines: usize,
    max_bytes: usize,
    mask: &Mask,
) -> (String, u64) {
    let reader = Reader {
        since: 0,
        tail: Some(lines),
        grep: None,
        max_bytes: Some(max_bytes),
        strip_ansi: true,
        mask,
    };
    match reader.read(path) {
        Ok(s) => (String::from_utf8_lossy(&s.text).into_owned(), s.total),
        Err(_) => (String::new(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn log(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("output.log");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        (dir, p)
    }

    static NO_MASK: Mask = Mask {
        secrets: Vec::new(),
    };

    /// A log of numbered 13-byte lines, `n` of them, appended to `p`.
    fn numbered(p: &Path, lines: std::ops::Range<u32>) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .unwrap();
        let mut text = Vec::new();
        for i in lines {
            writeln!(text, "line {i:07}").unwrap();
        }
        f.write_all(&text).unwrap();
    }

    #[test]
    fn a_log_over_max_output_keeps_head_and_newest_and_says_what_it_dropped() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        numbered(&p, 0..250_000); // 3.25 MB
        let max = 512 << 10;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let to = drop_middle(&f, &f.metadata().unwrap(), &p, 0, max)
            .unwrap()
            .expect("over the bound");
        let meta = f.metadata().unwrap();
        assert_eq!(meta.len(), 250_000 * 13, "the size and every offset stay");
        assert!(
            meta.blocks() * 512 <= max + 2 * meta.blksize(),
            "{} bytes on disk",
            meta.blocks() * 512
        );
        let d = Dropped::of(&p, meta.len()).unwrap().unwrap();
        assert_eq!((d.from, d.to), (256 << 10, to));
        assert_eq!(
            drop_middle(&f, &f.metadata().unwrap(), &p, to, max).unwrap(),
            None,
            "nothing new to drop"
        );

        // Page after page from the start: the head, the marker once, the newest part.
        let head = std::fs::read(&p).unwrap();
        let marker = format!(
            "\n[meanwhile: {} bytes of output dropped: over max_output]\n",
            d.bytes()
        );
        let mut want = head[..d.from as usize].to_vec();
        want.extend_from_slice(marker.as_bytes());
        want.extend_from_slice(&head[d.to as usize..]);
        let mut got = Vec::new();
        let mut since = 0;
        loop {
            let s = Reader { since, ..reader() }.read(&p).unwrap();
            assert_eq!(s.dropped, d.bytes());
            got.extend_from_slice(&s.text);
            since = s.cursor;
            if !s.more {
                break;
            }
        }
        assert_eq!(since, meta.len());
        assert_eq!(got, want);

        // A cursor inside the dropped middle answers from the marker.
        let s = Reader {
            since: d.from + 100,
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert!(s.text.starts_with(b"[meanwhile: "), "{:?}", &s.text[..60]);
        assert!(s.text.ends_with(b"line 0249999\n"));
        assert_eq!(s.cursor, meta.len());

        // A tail within what is kept, and a tail longer than it.
        let s = Reader {
            tail: Some(2),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(s.text, b"line 0249998\nline 0249999\n");
        let s = Reader {
            tail: Some(1_000_000),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert!(s.text.starts_with(b"[meanwhile: "));
        assert_eq!(
            s.text.len() as u64,
            marker.len() as u64 - 1 + meta.len() - d.to
        );

        // grep sees the head and the newest part, never the zeros in between.
        let re = Regex::new("^line 0(00000[0-2]|24999[89])$").unwrap();
        let s = Reader {
            grep: Some(&re),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(
            s.text,
            b"line 0000000\nline 0000001\nline 0000002\nline 0249998\nline 0249999\n"
        );
        let (found, _) =
            find_match(&p, 0, &Regex::new("line 0100000").unwrap(), true, &NO_MASK).unwrap();
        assert_eq!(found, None, "a dropped line is not found");

        // More output drops more, and the hole stays one.
        numbered(&p, 250_000..400_000);
        let to2 = drop_middle(&f, &f.metadata().unwrap(), &p, to, max)
            .unwrap()
            .expect("over again");
        assert!(to2 > to);
        let d2 = Dropped::of(&p, f.metadata().unwrap().len())
            .unwrap()
            .unwrap();
        assert_eq!((d2.from, d2.to), (256 << 10, to2));
    }

    fn reader() -> Reader<'static> {
        Reader {
            since: 0,
            tail: None,
            grep: None,
            max_bytes: None,
            strip_ansi: false,
            mask: &NO_MASK,
        }
    }

    #[test]
    fn secrets_are_masked_however_the_log_is_read() {
        let (_d, p) = log(b"token=s3cr3t-value ok\nagain s3cr3t-value\nshort s3cr3t\n");
        let mask = Mask {
            secrets: vec![b"s3cr3t-value".to_vec(), b"s3cr3t".to_vec()],
        };
        let masked = Reader {
            mask: &mask,
            ..reader()
        };
        assert_eq!(
            text(&masked.read(&p).unwrap()),
            "token=*** ok\nagain ***\nshort ***\n"
        );
        // A cursor in the middle of a secret: neither side shows a piece of it.
        for since in 6..18 {
            let s = Reader { since, ..masked }.read(&p).unwrap();
            assert!(!text(&s).contains("cr3"), "from {since}: {}", text(&s));
        }
        // grep sees the masked text: a secret cannot be guessed with it.
        let re = Regex::new("s3cr").unwrap();
        let s = Reader {
            grep: Some(&re),
            ..masked
        }
        .read(&p)
        .unwrap();
        assert_eq!((text(&s).as_str(), s.skipped_lines), ("", 3));
        let (tail, _) = last_lines(&p, 2, 1000, &mask);
        assert_eq!(tail, "again ***\nshort ***\n");
        let re = Regex::new("again").unwrap();
        let (m, _) = find_match(&p, 0, &re, true, &mask).unwrap();
        assert_eq!(m.as_deref(), Some("again ***"));
    }

    fn text(s: &Slice) -> String {
        String::from_utf8_lossy(&s.text).into_owned()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Whatever bytes a task printed and whatever the query, a read answers
        /// within its bounds and never panics.
        #[test]
        fn any_log_and_query_reads_within_bounds(
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(0x1b),
                ],
                0..4096,
            ),
            since in 0u64..5000,
            tail in proptest::option::of(0usize..50),
            grep in proptest::option::of("[a-z.]{0,3}"),
            max_bytes in proptest::option::of(1usize..2000),
            strip in proptest::prelude::any::<bool>(),
        ) {
            let (_d, p) = log(&body);
            let re = grep.as_deref().map(|g| Regex::new(g).unwrap());
            let s = Reader {
                since,
                tail,
                grep: re.as_ref(),
                max_bytes,
                strip_ansi: strip,
                mask: &NO_MASK,
            }
            .read(&p)
            .unwrap();
            let total = body.len() as u64;
            proptest::prop_assert_eq!(s.total, total);
            proptest::prop_assert!(s.cursor <= total && s.start <= s.cursor.max(since.min(total)));
            if let (Some(max), false) = (max_bytes, strip) {
                // Head and tail within max_bytes, plus the elision marker.
                proptest::prop_assert!(s.text.len() <= max + 64, "{} > {max}", s.text.len());
            }
            if !strip && grep.is_none() && tail.is_none() && max_bytes.is_none() {
                let from = since.min(total) as usize;
                proptest::prop_assert_eq!(&s.text[..], &body[from..from + s.text.len()]);
            }
        }
    }

    #[test]
    fn plain_reads_from_the_cursor() {
        let (_d, p) = log(b"one\ntwo\nthree\n");
        let s = reader().read(&p).unwrap();
        assert_eq!(
            (text(&s).as_str(), s.cursor, s.total),
            ("one\ntwo\nthree\n", 14, 14)
        );
        let s = Reader {
            since: 4,
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(text(&s), "two\nthree\n");
        let s = Reader {
            since: 99,
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!((text(&s).as_str(), s.cursor), ("", 14));
    }

    #[test]
    fn a_tail_of_one_huge_line_reads_only_what_it_keeps() {
        // 8 MiB without a line break, then two short lines: the tail of 3 lines
        // keeps the last max_bytes of the huge line, and says where it looked from.
        let mut content = vec![b'x'; 8 << 20];
        content.extend_from_slice(b"\nlast\nend\n");
        let (_d, p) = log(&content);
        let s = Reader {
            tail: Some(3),
            max_bytes: Some(4096),
            ..reader()
        }
        .read(&p)
        .unwrap();
        let total = content.len() as u64;
        assert!(text(&s).ends_with("\nlast\nend\n"));
        assert!(
            s.start >= total - (DEFAULT_PAGE_BYTES + BLOCK) as u64,
            "the walk back stopped near the kept range, at {}",
            s.start
        );
        assert!(s.text.len() <= DEFAULT_PAGE_BYTES + 64);
    }

    #[test]
    fn tail_takes_last_lines_with_or_without_trailing_newline() {
        let (_d, p) = log(b"a\nb\nc\nd\n");
        let s = Reader {
            tail: Some(2),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(text(&s), "c\nd\n");
        let (_d, p) = log(b"a\nb\nc\nd");
        let s = Reader {
            tail: Some(2),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(text(&s), "c\nd");
        let s = Reader {
            tail: Some(10),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(text(&s), "a\nb\nc\nd");
    }

    #[test]
    fn grep_skips_without_deleting_and_combines_with_tail() {
        let (_d, p) = log(b"ok 1\nerror: a\nok 2\nerror: b\nerror: c\n");
        let re = Regex::new("^error").unwrap();
        let s = Reader {
            grep: Some(&re),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(text(&s), "error: a\nerror: b\nerror: c\n");
        assert_eq!(s.skipped_lines, 2);
        let s = Reader {
            grep: Some(&re),
            tail: Some(1),
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(text(&s), "error: c\n");
        let s = reader().read(&p).unwrap();
        assert!(text(&s).contains("ok 2"), "the log is untouched");
    }

    #[test]
    fn max_bytes_keeps_head_and_tail_with_count() {
        let body: Vec<u8> = (0..1000).map(|i| b'a' + (i % 26) as u8).collect();
        let (_d, p) = log(&body);
        let s = Reader {
            max_bytes: Some(100),
            ..reader()
        }
        .read(&p)
        .unwrap();
        let t = text(&s);
        assert!(t.starts_with(std::str::from_utf8(&body[..50]).unwrap()));
        assert!(t.ends_with(std::str::from_utf8(&body[950..]).unwrap()));
        assert!(t.contains("[... 900 bytes elided ...]"), "{t}");
        assert_eq!((s.elided, s.cursor), (900, 1000));
    }

    #[test]
    fn ansi_is_stripped_and_invalid_utf8_replaced() {
        let (_d, p) = log(b"\x1b[31mred\x1b[0m \x1b]0;title\x07ok \xff\n");
        let s = Reader {
            strip_ansi: true,
            ..reader()
        }
        .read(&p)
        .unwrap();
        assert_eq!(text(&s), "red ok \u{fffd}\n");
    }

    #[test]
    fn every_kind_of_escape_is_stripped() {
        let check = |input: &[u8], want: &str| {
            assert_eq!(
                String::from_utf8_lossy(&strip_ansi(input)),
                want,
                "stripping {input:?}"
            );
        };
        check(b"a\x1bP1$r0m\x1b\\b", "ab"); // DCS ... ST
        check(b"a\x1b_app data\x1b\\b", "ab"); // APC ... ST
        check(b"a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"); // OSC 8
        check(b"a\x1b[38;5;196mred\x1b[0mb", "aredb"); // CSI with parameters
        check(b"a\x1b(Bb", "ab"); // charset selection
        check(b"tab\tnew\r\nline", "tab\tnew\r\nline");
        check(b"a\x1b[1;31", "a"); // cut off at the end of a page
        check(b"a\x9b31mb", "ab"); // 8-bit CSI
        check(b"a\x9d0;title\x9cb", "ab"); // 8-bit OSC ... ST
        check("a\u{9b}31mb".as_bytes(), "ab"); // CSI as a character
        check("\u{db}ber".as_bytes(), "\u{db}ber"); // 0x9b inside a character
    }

    #[test]
    fn big_logs_are_paged() {
        let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        let body: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 40_000)
            .collect();
        let (_d, p) = log(&body);
        let mut since = 0;
        let mut pages = 0;
        let mut read = 0;
        loop {
            let s = Reader { since, ..reader() }.read(&p).unwrap();
            assert!(s.text.len() <= DEFAULT_PAGE_BYTES);
            assert_eq!(s.text.last(), Some(&b'\n'), "pages end on a line");
            read += s.text.len();
            since = s.cursor;
            pages += 1;
            if !s.more {
                break;
            }
        }
        assert_eq!((read, pages), (body.len(), 3));
    }

    #[test]
    fn find_match_resumes_and_waits_for_complete_lines() {
        let (_d, p) = log(b"starting\nlistening on :80");
        let re = Regex::new("listening on").unwrap();
        let (m, scanned) = find_match(&p, 0, &re, false, &NO_MASK).unwrap();
        assert_eq!((m, scanned), (None, 9));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"80\n")
            .unwrap();
        let (m, scanned) = find_match(&p, scanned, &re, false, &NO_MASK).unwrap();
        assert_eq!(m.as_deref(), Some("listening on :8080"));
        assert_eq!(scanned, 28);
    }
}
