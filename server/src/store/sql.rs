//! The one way the store writes generated SQL: [`Params`] numbers a statement's placeholders
//! in bind order, and a [`Statement`] carries the text with its arguments, bound by
//! [`bind_args`] on either backend.
//!
//! Placeholders are anonymous `?` on SQLite, where sqlx finds a numbered parameter's index by a
//! linear scan of the statement's names — quadratic in the width of a multi-row statement — and
//! numbered `$n` on PostgreSQL. Binding in order makes both mean the same.
use super::Backend;

/// Placeholders of one statement, numbered in the order they are written.
pub(crate) struct Params {
    backend: Backend,
    next: usize,
}

impl Params {
    pub(crate) fn new(backend: Backend) -> Params {
        Params { backend, next: 1 }
    }

    /// The next placeholder.
    pub(crate) fn one(&mut self) -> String {
        let mut out = String::new();
        self.push(&mut out);
        out
    }

    /// Writes the next placeholder (wide statements write thousands: no string each).
    fn push(&mut self, out: &mut String) {
        match self.backend {
            Backend::Sqlite => out.push('?'),
            Backend::Postgres => {
                out.push('$');
                out.push_str(&self.next.to_string());
            }
        }
        self.next += 1;
    }

    /// `n` placeholders as a list: `$1,$2,$3`.
    pub(crate) fn list(&mut self, n: usize) -> String {
        let mut out = String::with_capacity(n * 5);
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            self.push(&mut out);
        }
        out
    }

    /// A multi-row `VALUES` body of `rows` rows of `cols` columns: `($1,$2),($3,$4)`.
    pub(crate) fn rows(&mut self, rows: usize, cols: usize) -> String {
        self.values(rows, cols, &[])
    }

    /// Like [`Params::rows`] for a `VALUES` list that is not an INSERT's, where PostgreSQL cannot
    /// infer the parameters' types from a target column: one type per column (`$1::text`).
    pub(crate) fn typed_rows(&mut self, rows: usize, types: &[&str]) -> String {
        self.values(rows, types.len(), types)
    }

    /// `types` is empty (untyped) or names every column's type.
    fn values(&mut self, rows: usize, cols: usize, types: &[&str]) -> String {
        let mut out = String::with_capacity(rows * cols * 6);
        for r in 0..rows {
            out.push_str(if r > 0 { ",(" } else { "(" });
            for c in 0..cols {
                if c > 0 {
                    out.push(',');
                }
                self.push(&mut out);
                if let (Backend::Postgres, Some(ty)) = (self.backend, types.get(c)) {
                    out.push_str("::");
                    out.push_str(ty);
                }
            }
            out.push(')');
        }
        out
    }
}

/// One argument of a generated statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Int(i64),
}

/// A generated statement and its arguments, in bind order.
#[derive(Debug)]
pub(crate) struct Statement<'a> {
    pub sql: String,
    pub args: Vec<Arg<'a>>,
}

/// Binds a statement's arguments to a sqlx query of either backend.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match *a {
                $crate::store::sql::Arg::Text(s) => q.bind(s),
                $crate::store::sql::Arg::MaybeText(s) => q.bind(s),
                $crate::store::sql::Arg::Int(i) => q.bind(i),
            };
        }
        q
    }};
}
pub(crate) use bind_args;

#[cfg(test)]
mod tests {
    use super::{Backend, Params};

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut p = Params::new(Backend::Postgres);
        assert_eq!(p.one(), "$1");
        assert_eq!(p.rows(2, 2), "($2,$3),($4,$5)");
        assert_eq!(p.list(3), "$6,$7,$8");
        assert_eq!(p.typed_rows(1, &["text", "bigint"]), "($9::text,$10::bigint)");
        let mut s = Params::new(Backend::Sqlite);
        assert_eq!(s.rows(2, 2), "(?,?),(?,?)");
        assert_eq!(s.typed_rows(1, &["text"]), "(?)");
        assert_eq!(s.list(2), "?,?");
    }
}
