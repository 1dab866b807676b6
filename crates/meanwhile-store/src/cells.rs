//! A row of either driver, read by column number: both stores decode their rows
//! with one reader per record (`decode`'s `*Columns::read`), since they select the
//! same columns in the same order (`crate::sql`).

use crate::StoreError;

/// A row whose columns are read by number.
pub(crate) trait Cells {
    /// Column `i`, as `T`.
    fn cell<T: Cell>(&self, i: usize) -> Result<T, StoreError>;
}

/// A value both drivers read out of a column.
pub(crate) trait Cell: rusqlite::types::FromSql + PgCell {}

impl<T: rusqlite::types::FromSql + PgCell> Cell for T {}

/// What PostgreSQL's driver reads out of a column.
#[cfg(feature = "postgres")]
pub(crate) trait PgCell: for<'a> tokio_postgres::types::FromSql<'a> {}

#[cfg(feature = "postgres")]
impl<T: for<'a> tokio_postgres::types::FromSql<'a>> PgCell for T {}

/// Nothing, without the `postgres` feature.
#[cfg(not(feature = "postgres"))]
pub(crate) trait PgCell {}

#[cfg(not(feature = "postgres"))]
impl<T> PgCell for T {}

impl Cells for rusqlite::Row<'_> {
    fn cell<T: Cell>(&self, i: usize) -> Result<T, StoreError> {
        Ok(self.get(i)?)
    }
}

#[cfg(feature = "postgres")]
impl Cells for tokio_postgres::Row {
    fn cell<T: Cell>(&self, i: usize) -> Result<T, StoreError> {
        self.try_get(i).map_err(StoreError::Postgres)
    }
}
