//! A command line read the way `sh -c` will read it, for the permission rules: its
//! simple commands (quotes removed), the files its redirections write, and what
//! could not be read with certainty.
//!
//! The line is parsed twice with a real parser (brush-parser): as POSIX sh (dash,
//! Debian's `/bin/sh`) and as bash (`/bin/sh` elsewhere), and the parts of both
//! readings are judged, so a line that the two shells split differently (`&>`) is
//! judged by the stricter reading. What either shell might read otherwise than the
//! parser (`$'...'`, process substitution, here-documents, functions, comments, brace
//! expansion, `[[`, `((`) is reported as unreadable, and the rules then ask.

use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions};

/// How deep command substitutions may nest before the line is called unreadable:
/// far beyond what a person writes, and a bound on the recursion.
const MAX_DEPTH: usize = 8;

/// One part of a command line that the rules judge on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// A simple command as it will run.
    Command(Command),
    /// A file a redirection writes (`>`, `>>`, `>|`, `<>`, `&>`, `>&file`).
    Write {
        /// The path after quote removal, `./` dropped.
        path: String,
        /// It is absolute, starts with `~` or climbs with `..`, or follows a `cd`:
        /// it may lie outside the workspace.
        outside: bool,
    },
    /// Something the reading cannot judge with certainty, and why.
    Unreadable(String),
}

/// A simple command: its words after quote removal, assignments first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    /// The words joined by spaces; a word holding a space, or empty, is single-quoted.
    pub text: String,
    /// Expansions whose value is known only when the command runs (`$X`, `$(...)`,
    /// backquotes, `$((...))`), as written; they stand as written in `text`.
    pub expansions: Vec<String>,
}

/// Reads `line` as sh and as bash; the parts of both, each once.
pub(crate) fn read(line: &str) -> Vec<Part> {
    // The line is the model's: a parser bug it trips must not take the agent (or the
    // daemon running an agent task) down, only make the line unreadable.
    std::panic::catch_unwind(|| read_both(line)).unwrap_or_else(|_| {
        vec![Part::Unreadable(
            "a line the shell parser failed on".to_string(),
        )]
    })
}

fn read_both(line: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    // Bash first: where sh cannot parse a bash construct, bash's reading names it.
    for sh in [false, true] {
        let mut r = Reader {
            opts: options(sh),
            parts: Vec::new(),
            changes_dir: false,
        };
        r.line(line, 0);
        if r.changes_dir {
            // After a `cd`, a relative path may be anywhere.
            for p in &mut r.parts {
                if let Part::Write { outside, .. } = p {
                    *outside = true;
                }
            }
        }
        for p in r.parts {
            if !parts.contains(&p) {
                parts.push(p);
            }
        }
    }
    parts
}

fn options(sh: bool) -> ParserOptions {
    ParserOptions {
        // `sh -c` runs without extglob whichever shell it is.
        enable_extended_globbing: false,
        posix_mode: sh,
        sh_mode: sh,
        ..ParserOptions::default()
    }
}

struct Reader {
    opts: ParserOptions,
    parts: Vec<Part>,
    changes_dir: bool,
}

/// A word after quote removal.
struct Resolved {
    text: String,
    expansions: Vec<String>,
}

impl Reader {
    fn unreadable(&mut self, why: impl Into<String>) {
        self.parts.push(Part::Unreadable(why.into()));
    }

    fn shell(&self) -> &'static str {
        if self.opts.sh_mode { "sh" } else { "bash" }
    }

    /// Reads a whole command line (the top one, or a substitution's inside).
    fn line(&mut self, line: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.unreadable(format!(
                "command substitutions nested more than {MAX_DEPTH} deep"
            ));
            return;
        }
        if line.contains("<<") {
            // Never parsed: they are asked whatever they hold, and brush-parser's
            // tokenizer does not return on some of them (`$(<< <(c$(`).
            self.unreadable(
                "a here-document or here-string (`<<`), whose text the shell may expand",
            );
            return;
        }
        let program =
            Parser::new(std::io::BufReader::new(line.as_bytes()), &self.opts).parse_program();
        match program {
            Ok(p) => {
                for list in &p.complete_commands {
                    self.list(list, depth);
                }
            }
            Err(e) => self.unreadable(format!(
                "a line that {} does not parse (`{}`: {e})",
                self.shell(),
                meanwhile_core::shorten(line, 80),
            )),
        }
        self.comments(line);
    }

    /// A comment is text the shell skips but a person reads: it can make a line look
    /// like something it is not, so any comment is unreadable. The tokenizer drops
    /// comments; a `#` that no token covers is one.
    fn comments(&mut self, line: &str) {
        let Ok(tokens) = brush_parser::uncached_tokenize_str(line, &self.opts.tokenizer_options())
        else {
            // The parse that follows reports the error.
            return;
        };
        let mut covered = vec![false; line.chars().count()];
        for t in &tokens {
            let span = match t {
                brush_parser::Token::Operator(_, s) | brush_parser::Token::Word(_, s) => s,
            };
            for c in covered
                .iter_mut()
                .take(span.end.index)
                .skip(span.start.index)
            {
                *c = true;
            }
        }
        if line
            .chars()
            .zip(&covered)
            .any(|(ch, covered)| ch == '#' && !covered)
        {
            self.unreadable("a comment, which can hide the rest of a line from whoever reads it");
        }
    }

    fn list(&mut self, list: &ast::CompoundList, depth: usize) {
        for ast::CompoundListItem(and_or, _) in &list.0 {
            self.pipeline(&and_or.first, depth);
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p, depth),
                }
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline, depth: usize) {
        if p.timed.is_some() {
            self.unreadable("the `time` keyword of bash (sh runs a program named time)");
        }
        for c in &p.seq {
            self.command(c, depth);
        }
    }

    fn command(&mut self, c: &ast::Command, depth: usize) {
        match c {
            ast::Command::Simple(s) => self.simple(s, depth),
            ast::Command::Compound(c, redirects) => {
                self.compound(c, depth);
                self.redirects(redirects.as_ref(), depth);
            }
            ast::Command::Function(f) => {
                self.unreadable(format!(
                    "a function definition (`{}`), which changes what a name runs",
                    f.fname.value
                ));
                // Its body is still read, so that a denied command in it is denied.
                self.compound(&f.body.0, depth);
                self.redirects(f.body.1.as_ref(), depth);
            }
            ast::Command::ExtendedTest(_, redirects) => {
                self.unreadable("`[[ ... ]]`, which only bash reads as a test");
                self.redirects(redirects.as_ref(), depth);
            }
        }
    }

    fn redirects(&mut self, list: Option<&ast::RedirectList>, depth: usize) {
        for r in list.iter().flat_map(|l| &l.0) {
            self.redirect(r, depth);
        }
    }

    fn compound(&mut self, c: &ast::CompoundCommand, depth: usize) {
        use ast::CompoundCommand as C;
        match c {
            C::BraceGroup(g) => self.list(&g.list, depth),
            C::Subshell(s) => self.list(&s.list, depth),
            C::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(w, depth);
                }
                self.list(&f.body.list, depth);
            }
            C::CaseClause(c) => {
                self.word(&c.value, depth);
                for item in &c.cases {
                    for w in &item.patterns {
                        self.word(w, depth);
                    }
                    if let Some(l) = &item.cmd {
                        self.list(l, depth);
                    }
                }
            }
            C::IfClause(i) => {
                self.list(&i.condition, depth);
                self.list(&i.then, depth);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, depth);
                    }
                    self.list(&e.body, depth);
                }
            }
            C::WhileClause(w) | C::UntilClause(w) => {
                self.list(&w.0, depth);
                self.list(&w.1.list, depth);
            }
            C::Arithmetic(_) | C::ArithmeticForClause(_) => {
                self.unreadable("`(( ... ))`, which bash reads as arithmetic and sh as subshells");
            }
            C::Coprocess(_) => self.unreadable("a bash coprocess"),
        }
    }

    fn simple(&mut self, s: &ast::SimpleCommand, depth: usize) {
        use ast::CommandPrefixOrSuffixItem as Item;
        let mut words: Vec<Resolved> = Vec::new();
        for item in s.prefix.iter().flat_map(|p| &p.0) {
            match item {
                Item::IoRedirect(r) => self.redirect(r, depth),
                Item::Word(w) => words.extend(self.word(w, depth)),
                Item::AssignmentWord(a, w) => {
                    if matches!(a.value, ast::AssignmentValue::Array(_)) {
                        self.unreadable(format!("the bash array `{}`", w.value));
                    }
                    words.extend(self.word(w, depth));
                }
                Item::ProcessSubstitution(_, sub) => self.process_substitution(sub, depth),
            }
        }
        if let Some(w) = &s.word_or_name {
            words.extend(self.word(w, depth));
        }
        for item in s.suffix.iter().flat_map(|p| &p.0) {
            match item {
                Item::IoRedirect(r) => self.redirect(r, depth),
                Item::Word(w) | Item::AssignmentWord(_, w) => words.extend(self.word(w, depth)),
                Item::ProcessSubstitution(_, sub) => self.process_substitution(sub, depth),
            }
        }
        if s.word_or_name
            .as_ref()
            .is_some_and(|w| matches!(w.value.as_str(), "cd" | "pushd" | "popd"))
        {
            self.changes_dir = true;
        }
        if words.is_empty() {
            // Only redirections: they are judged as writes.
            return;
        }
        let text = words
            .iter()
            .map(|w| quote(&w.text, !w.expansions.is_empty()))
            .collect::<Vec<_>>()
            .join(" ");
        let expansions = words.into_iter().flat_map(|w| w.expansions).collect();
        self.parts.push(Part::Command(Command { text, expansions }));
    }

    fn process_substitution(&mut self, sub: &ast::SubshellCommand, depth: usize) {
        self.unreadable("a process substitution `<(...)` or `>(...)`, which only bash runs");
        self.list(&sub.list, depth);
    }

    fn redirect(&mut self, r: &ast::IoRedirect, depth: usize) {
        use ast::IoFileRedirectKind as K;
        use ast::IoFileRedirectTarget as T;
        match r {
            ast::IoRedirect::File(_, kind, target) => match (kind, target) {
                (_, T::ProcessSubstitution(_, sub)) => self.process_substitution(sub, depth),
                (_, T::Fd(_)) => {}
                (K::Write | K::Append | K::Clobber | K::ReadAndWrite, T::Filename(w)) => {
                    self.write(w, depth)
                }
                // `>&file` is bash's `&>file`.
                (K::DuplicateOutput, T::Duplicate(w))
                    if !w.value.chars().all(|c| c.is_ascii_digit() || c == '-') =>
                {
                    self.write(w, depth)
                }
                (_, T::Filename(w) | T::Duplicate(w)) => {
                    // A read: only its substitutions matter.
                    self.word(w, depth);
                }
            },
            // Lines with `<<` are not parsed (see `line`); these are read for
            // completeness.
            ast::IoRedirect::HereDocument(..) | ast::IoRedirect::HereString(..) => self.unreadable(
                "a here-document or here-string (`<<`), whose text the shell may expand",
            ),
            ast::IoRedirect::OutputAndError(w, _) => self.write(w, depth),
        }
    }

    fn write(&mut self, w: &ast::Word, depth: usize) {
        let Some(r) = self.word(w, depth) else {
            return;
        };
        if !r.expansions.is_empty() {
            self.unreadable(format!(
                "a redirection to `{}`, a path known only when it runs",
                r.text
            ));
            return;
        }
        let path = r.text;
        if matches!(path.as_str(), "/dev/null" | "/dev/stdout" | "/dev/stderr")
            || path
                .strip_prefix("/dev/fd/")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        {
            return;
        }
        let outside =
            path.starts_with('/') || path.starts_with('~') || path.split('/').any(|c| c == "..");
        let path = path.strip_prefix("./").unwrap_or(&path).to_string();
        self.parts.push(Part::Write { path, outside });
    }

    /// Resolves a word's quoting; reads the commands it substitutes. `None` when the
    /// word could not be read (reported).
    fn word(&mut self, w: &ast::Word, depth: usize) -> Option<Resolved> {
        if !self.opts.sh_mode
            && let Ok(Some(pieces)) = word::parse_brace_expansions(&w.value, &self.opts)
            && pieces
                .iter()
                .any(|p| matches!(p, word::BraceExpressionOrText::Expr(_)))
        {
            self.unreadable(format!(
                "the brace expansion `{}`, which bash expands and sh does not",
                w.value
            ));
        }
        let pieces = match word::parse(&w.value, &self.opts) {
            Ok(p) => p,
            Err(e) => {
                self.unreadable(format!(
                    "a word that {} does not parse (`{}`: {e})",
                    self.shell(),
                    w.value,
                ));
                return None;
            }
        };
        let mut out = Resolved {
            text: String::new(),
            expansions: Vec::new(),
        };
        self.pieces(&w.value, &pieces, &mut out, depth);
        Some(out)
    }

    fn pieces(
        &mut self,
        source: &str,
        pieces: &[WordPieceWithSource],
        out: &mut Resolved,
        depth: usize,
    ) {
        for p in pieces {
            let raw = source.get(p.start_index..p.end_index).unwrap_or(source);
            match &p.piece {
                WordPiece::Text(t) | WordPiece::SingleQuotedText(t) => out.text.push_str(t),
                WordPiece::EscapeSequence(e) => out.text.push_str(e.get(1..).unwrap_or(e)),
                WordPiece::DoubleQuotedSequence(inner) => self.pieces(source, inner, out, depth),
                // `~` stands for the home directory: known, and kept as written.
                WordPiece::TildeExpansion(_) => out.text.push_str(raw),
                WordPiece::AnsiCQuotedText(_) => {
                    self.unreadable(format!(
                        "the quoting `{raw}`, which bash and sh read differently"
                    ));
                    out.text.push_str(raw);
                }
                WordPiece::GettextDoubleQuotedSequence(_) => {
                    self.unreadable(format!(
                        "the quoting `{raw}`, which bash and sh read differently"
                    ));
                    out.text.push_str(raw);
                }
                WordPiece::CommandSubstitution(inner) => {
                    self.line(inner, depth + 1);
                    out.expand(raw);
                }
                WordPiece::BackquotedCommandSubstitution(inner) => {
                    self.line(&unescape_backquoted(inner), depth + 1);
                    out.expand(raw);
                }
                WordPiece::ParameterExpansion(_) | WordPiece::ArithmeticExpression(_) => {
                    out.expand(raw)
                }
            }
        }
    }
}

impl Resolved {
    fn expand(&mut self, raw: &str) {
        self.text.push_str(raw);
        self.expansions.push(raw.to_string());
    }
}

/// Inside backquotes, `\\`, `` \` `` and `\$` stand for the character after the
/// backslash (POSIX 2.6.3); the rest is read as it is.
fn unescape_backquoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, '\\' | '`' | '$')
        {
            out.push(n);
            chars.next();
        } else {
            out.push(c);
        }
    }
    out
}

/// A word as it appears in a command's text: as it is, unless it holds a space or is
/// empty (then single-quoted, so that word boundaries stay where the shell put them).
/// A word with expansions is kept as written.
fn quote(word: &str, expanded: bool) -> String {
    if expanded || (!word.is_empty() && !word.chars().any(char::is_whitespace)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
