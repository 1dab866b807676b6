//! SQL text both stores run, written once: each statement here is PostgreSQL's text,
//! with `$N` parameters, and [`sql!`] makes SQLite's at compile time by writing each
//! `$N` as `?N` (both number their parameters from 1; SQLite reads `$N` as a *named*
//! parameter, numbered by first appearance, so the text cannot simply be shared).
//! Each store's module names the statements it runs as before, as constants taken
//! from here (`.sqlite` or `.postgres`), so a query reads the same at its call site.
//! Only text the two dialects agree on lives here; the rest stays with its store.

pub(crate) mod audit;
pub(crate) mod ops;
pub(crate) mod retention;

/// One statement in both dialects.
pub(crate) struct Sql {
    /// With `$N` parameters.
    #[allow(dead_code)] // without the `postgres` feature
    pub postgres: &'static str,
    /// With `?N` parameters.
    pub sqlite: &'static str,
}

/// `text` with every `$` that begins a parameter number written as `?`.
pub(crate) const fn sqlite_form<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N, "the length of the text");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if bytes[i] == b'$' && i + 1 < N && bytes[i + 1].is_ascii_digit() {
            b'?'
        } else {
            bytes[i]
        };
        i += 1;
    }
    out
}

/// Defines `$name` as a [`Sql`] from PostgreSQL's text: a literal, or a `concat!` of
/// literals and macros that stand for literals (a column list written once).
macro_rules! sql {
    ($(#[$meta:meta])* $name:ident = $text:expr;) => {
        $(#[$meta])*
        pub(crate) const $name: $crate::sql::Sql = {
            const SQLITE: [u8; $text.len()] = $crate::sql::sqlite_form($text);
            $crate::sql::Sql {
                postgres: $text,
                sqlite: match core::str::from_utf8(&SQLITE) {
                    Ok(text) => text,
                    Err(_) => panic!("SQL text is ASCII"),
                },
            }
        };
    };
}
pub(crate) use sql;

#[cfg(test)]
mod tests {
    sql! {
        /// A sample.
        SAMPLE = "SELECT x FROM t WHERE a = $1 AND b < $12 AND c = '$' LIMIT $2";
    }

    #[test]
    fn sqlite_s_form_numbers_parameters_with_question_marks() {
        assert_eq!(
            SAMPLE.sqlite,
            "SELECT x FROM t WHERE a = ?1 AND b < ?12 AND c = '$' LIMIT ?2"
        );
        assert_eq!(
            SAMPLE.postgres,
            "SELECT x FROM t WHERE a = $1 AND b < $12 AND c = '$' LIMIT $2"
        );
    }
}
