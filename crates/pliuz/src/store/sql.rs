//! Running one statement: its values bound in order, its rows read back.
//! Every read and write of the store goes through these few functions, so
//! binding and decoding (and their errors) are written once.

use super::{Result, StoreError};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments, Decode, Encode, Executor, Row, Type};

/// A value bound to a [`Statement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
    /// NULL, typed (PostgreSQL checks a value's type against its column).
    NullText,
    NullInt,
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        v.map_or(Arg::NullText, Arg::from)
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        v.map_or(Arg::NullText, Arg::Text)
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(v.to_owned())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(v)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(v)
    }
}

/// SQL assembled at run time (optional filters, `IN` lists), with its
/// values. Placeholders are numbered (`$1`, `$2`, ...) as values are added,
/// which both SQLite and PostgreSQL read, so one text serves both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder, to be written into the SQL.
    pub fn arg(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// A comma-separated placeholder list binding each of `values`.
    pub fn args_list<'v>(&mut self, values: impl IntoIterator<Item = &'v String>) -> String {
        values
            .into_iter()
            .map(|v| self.arg(v.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// The statement with its values bound, to run on any executor.
    pub fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        bind_args(sqlx::query(&self.sql), &self.args)
    }
}

/// `q` with `args` bound, in order (for statements assembled by several
/// changes, as the writer sends held rows).
pub(crate) fn bind_args<'q>(
    q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
    args.iter().fold(q, |q, a| match a {
        Arg::Text(s) => q.bind(s.as_str()),
        Arg::Int(i) => q.bind(*i),
        Arg::Blob(b) => q.bind(b.as_slice()),
        Arg::NullText => q.bind(None::<&str>),
        Arg::NullInt => q.bind(None::<i64>),
    })
}

/// The values of a statement's `$1, $2, ...`, in order: a tuple of them
/// (`()` for none), or a [`Statement`]'s arguments.
pub(crate) trait Binds<'q> {
    fn into_arguments(self) -> std::result::Result<AnyArguments<'q>, sqlx::Error>;
}

impl<'q> Binds<'q> for () {
    fn into_arguments(self) -> std::result::Result<AnyArguments<'q>, sqlx::Error> {
        Ok(AnyArguments::default())
    }
}

impl<'q> Binds<'q> for &'q [Arg] {
    fn into_arguments(self) -> std::result::Result<AnyArguments<'q>, sqlx::Error> {
        let mut args = AnyArguments::default();
        for a in self {
            match a {
                Arg::Text(s) => args.add(s.as_str()),
                Arg::Int(i) => args.add(*i),
                Arg::Blob(b) => args.add(b.as_slice()),
                Arg::NullText => args.add(None::<&str>),
                Arg::NullInt => args.add(None::<i64>),
            }
            .map_err(sqlx::Error::Encode)?;
        }
        Ok(args)
    }
}

macro_rules! binds_for_tuple {
    ($($value:ident),+) => {
        impl<'q, $($value),+> Binds<'q> for ($($value,)+)
        where
            $($value: 'q + Encode<'q, Any> + Type<Any>),+
        {
            #[allow(non_snake_case)]
            fn into_arguments(self) -> std::result::Result<AnyArguments<'q>, sqlx::Error> {
                let ($($value,)+) = self;
                let mut args = AnyArguments::default();
                $(args.add($value).map_err(sqlx::Error::Encode)?;)+
                Ok(args)
            }
        }
    };
}

binds_for_tuple!(A);
binds_for_tuple!(A, B);
binds_for_tuple!(A, B, C);
binds_for_tuple!(A, B, C, D);
binds_for_tuple!(A, B, C, D, E);
binds_for_tuple!(A, B, C, D, E, F);
binds_for_tuple!(A, B, C, D, E, F, G);
binds_for_tuple!(A, B, C, D, E, F, G, H);

/// A type one column decodes to.
pub(crate) trait Column: for<'r> Decode<'r, Any> + Type<Any> {}
impl<T: for<'r> Decode<'r, Any> + Type<Any>> Column for T {}

/// The statement `sql` with `binds` bound to its placeholders.
fn bound<'q>(
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<sqlx::query::Query<'q, Any, AnyArguments<'q>>> {
    Ok(sqlx::query_with(sql, binds.into_arguments()?))
}

/// Runs a statement that returns no rows; returns how many rows it changed.
pub(crate) async fn execute<'q, 'c>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<u64> {
    Ok(bound(sql, binds)?.execute(conn).await?.rows_affected())
}

/// Every row a statement returns, as they are.
pub(crate) async fn fetch_rows<'q, 'c>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Vec<AnyRow>> {
    let rows = bound(sql, binds)?.fetch_all(conn).await?;
    Ok(rows)
}

/// The row a statement finds, as it is, if it finds one.
pub(crate) async fn fetch_optional_row<'q, 'c>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Option<AnyRow>> {
    Ok(bound(sql, binds)?.fetch_optional(conn).await?)
}

/// The first column of the one row a statement returns (`COUNT(*)`,
/// `MIN(..)`).
pub(crate) async fn fetch_scalar<'q, 'c, O: Column>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<O> {
    let row = bound(sql, binds)?.fetch_one(conn).await?;
    Ok(row.try_get(0)?)
}

/// The first column of the row a statement finds, if it finds one.
pub(crate) async fn fetch_optional_scalar<'q, 'c, O: Column>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Option<O>> {
    let first = fetch_optional::<First<O>>(conn, sql, binds).await?;
    Ok(first.map(|f| f.0))
}

/// The first column of every row a statement returns.
pub(crate) async fn fetch_scalars<'q, 'c, O: Column>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Vec<O>> {
    let firsts: Vec<First<O>> = fetch_all(conn, sql, binds).await?;
    Ok(firsts.into_iter().map(|f| f.0).collect())
}

/// Every row a statement returns, each read as a `T`.
pub(crate) async fn fetch_all<'q, 'c, T: Record>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Vec<T>> {
    let rows = fetch_rows(conn, sql, binds).await?;
    rows.iter().map(T::from_row).collect()
}

/// The row a statement finds, read as a `T`, if it finds one.
pub(crate) async fn fetch_optional<'q, 'c, T: Record>(
    conn: impl Executor<'c, Database = Any>,
    sql: &'q str,
    binds: impl Binds<'q>,
) -> Result<Option<T>> {
    match fetch_optional_row(conn, sql, binds).await? {
        Some(row) => T::from_row(&row).map(Some),
        None => Ok(None),
    }
}

/// A value read whole from one row.
pub(crate) trait Record: Sized {
    fn from_row(row: &AnyRow) -> Result<Self>;
}

/// Implements [`Record`] for a struct whose every field is the column of
/// the same name: `from_columns!(DueTimer: approval_id, kind, due_at);`.
macro_rules! from_columns {
    ($record:ident: $($field:ident),+ $(,)?) => {
        impl $crate::store::sql::Record for $record {
            fn from_row(row: &sqlx::any::AnyRow) -> $crate::store::Result<$record> {
                Ok($crate::store::sql::with_columns!(row => $record { $($field),+; }))
            }
        }
    };
}
pub(crate) use from_columns;

/// A struct literal whose fields before the `;` are each the column of the
/// same name in `row` (a decode failure returns `StoreError::Corrupt`), and
/// whose other fields follow as in any struct literal:
/// `with_columns!(row => Run { id, agent; status, metadata: json_col(row, "metadata")? })`.
macro_rules! with_columns {
    ($row:expr => $record:ident { $($column:ident),+ ; $($rest:tt)* }) => {
        $record {
            $($column: $crate::store::sql::col($row, stringify!($column))?,)+
            $($rest)*
        }
    };
}
pub(crate) use with_columns;

/// `columns` ("id, name") each prefixed with a table alias ("u.id, u.name"),
/// for a join.
pub(crate) fn qualified(alias: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first column of a row, read like a scalar query reads it (a decode
/// failure is a database error).
struct First<O>(O);

impl<O: Column> Record for First<O> {
    fn from_row(row: &AnyRow) -> Result<First<O>> {
        Ok(First(row.try_get(0)?))
    }
}

/// One column of a row, a decode failure being [`StoreError::Corrupt`].
pub(crate) fn col<T>(row: &AnyRow, name: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get::<T, _>(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// A column holding JSON text (or NULL).
pub(crate) fn json_col(row: &AnyRow, name: &str) -> Result<Option<serde_json::Value>> {
    match col::<Option<String>>(row, name)? {
        None => Ok(None),
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}"))),
    }
}
