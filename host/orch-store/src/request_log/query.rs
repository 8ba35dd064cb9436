//! Filtered, paginated reads of the request log for the admin API.
//!
//! Pages are ordered newest first by `(ts_ms, id)` and continue from a
//! [`LogCursor`] (keyset pagination): every filter has an index on
//! `(column, ts_ms)` — and the row id rides along in it implicitly on SQLite
//! and InnoDB — so a page reads about `limit` index entries however many rows
//! match, instead of sorting every match or skipping an `OFFSET`.

use sqlx::QueryBuilder;

use super::{RequestLogRecord, SELECT_PREFIX, clean_text, decode_row};
use crate::error::StoreError;
use crate::store::{Store, with_pool};

/// Page size of [`LogQuery::default`].
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Which rows [`Store::query_request_logs`] returns. Every set filter must
/// match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogQuery {
    /// Only requests that arrived at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only requests that arrived before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// Only this requested model. Text filters compare with the column's
    /// collation: exactly on PostgreSQL and SQLite, ignoring case on MySQL.
    pub model: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this client key.
    pub client_key_id: Option<i64>,
    /// Only these statuses.
    pub status: Option<StatusFilter>,
    /// Continue after this row: pass [`LoggedRequest::cursor`] of the last row
    /// of the previous page; `None` starts at the newest.
    pub before: Option<LogCursor>,
    /// Most rows returned.
    pub limit: u32,
}

impl Default for LogQuery {
    /// No filters: the newest [`DEFAULT_PAGE_SIZE`] rows.
    fn default() -> Self {
        Self {
            since_ms: None,
            until_ms: None,
            model: None,
            provider: None,
            client_key_id: None,
            status: None,
            before: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

/// A status filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this status, e.g. 429. Served by the `(status, ts_ms)` index
    /// in time order.
    Exact(u16),
    /// A class by its first digit: `Class(5)` is 500–599. A range on the
    /// `(status, ts_ms)` index: the matches in the time range are sorted,
    /// so prefer a time range with it.
    Class(u8),
}

impl StatusFilter {
    /// The inclusive range of statuses matched.
    fn range(self) -> (i32, i32) {
        match self {
            Self::Exact(status) => (i32::from(status), i32::from(status)),
            Self::Class(class) => {
                let low = i32::from(class) * 100;
                (low, low + 99)
            }
        }
    }
}

/// Where a page of [`Store::query_request_logs`] continues: the position of
/// the last row already seen, in `(ts_ms, id)` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogCursor {
    /// The row's arrival time, Unix ms.
    pub ts_ms: i64,
    /// The row's id.
    pub id: i64,
}

/// A request-log row with its database id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The row's id: unique, increasing in write order.
    pub id: i64,
    /// The logged request.
    pub record: RequestLogRecord,
}

impl LoggedRequest {
    /// The cursor that continues a query after this row.
    pub fn cursor(&self) -> LogCursor {
        LogCursor {
            ts_ms: self.record.ts_ms,
            id: self.id,
        }
    }
}

impl Store {
    /// Up to `query.limit` rows matching `query`, newest first (by arrival
    /// time, then id), starting after `query.before`.
    ///
    /// Paging with the last row's [`LoggedRequest::cursor`] returns every
    /// matching row exactly once, also while new rows are being written.
    pub async fn query_request_logs(
        &self,
        query: &LogQuery,
    ) -> Result<Vec<LoggedRequest>, StoreError> {
        with_pool!(&self.backend, pool => {
            let mut sql = QueryBuilder::new(SELECT_PREFIX);
            let mut filter = Filter::new();
            if let Some(since) = query.since_ms {
                filter.next(&mut sql).push("ts_ms >= ").push_bind(since);
            }
            if let Some(until) = query.until_ms {
                filter.next(&mut sql).push("ts_ms < ").push_bind(until);
            }
            if let Some(model) = &query.model {
                filter.next(&mut sql).push("requested_model = ").push_bind(clean_text(model));
            }
            if let Some(provider) = &query.provider {
                filter.next(&mut sql).push("provider = ").push_bind(clean_text(provider));
            }
            if let Some(key) = query.client_key_id {
                filter.next(&mut sql).push("client_key_id = ").push_bind(key);
            }
            match query.status.map(StatusFilter::range) {
                Some((low, high)) if low == high => {
                    filter.next(&mut sql).push("status = ").push_bind(low);
                }
                Some((low, high)) => {
                    filter.next(&mut sql).push("status BETWEEN ").push_bind(low)
                        .push(" AND ").push_bind(high);
                }
                None => {}
            }
            if let Some(cursor) = query.before {
                // The first bound is what an index range can use; the second
                // excludes the rows of the same millisecond already returned.
                filter.next(&mut sql).push("ts_ms <= ").push_bind(cursor.ts_ms)
                    .push(" AND (ts_ms < ").push_bind(cursor.ts_ms)
                    .push(" OR id < ").push_bind(cursor.id).push(")");
            }
            sql.push(" ORDER BY ts_ms DESC, id DESC LIMIT ").push_bind(i64::from(query.limit));
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(LoggedRequest {
                        id: sqlx::Row::try_get(row, "id")?,
                        record: decode_row(row)?,
                    })
                })
                .collect()
        })
    }
}

/// Joins conditions with `WHERE` first and `AND` after.
struct Filter {
    started: bool,
}

impl Filter {
    fn new() -> Self {
        Self { started: false }
    }

    /// Pushes the keyword that precedes the next condition.
    fn next<'q, 'args, DB: sqlx::Database>(
        &mut self,
        sql: &'q mut QueryBuilder<'args, DB>,
    ) -> &'q mut QueryBuilder<'args, DB> {
        sql.push(if self.started { " AND " } else { "WHERE " });
        self.started = true;
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters_cover_their_range() {
        assert_eq!(StatusFilter::Exact(429).range(), (429, 429));
        assert_eq!(StatusFilter::Class(5).range(), (500, 599));
        assert_eq!(StatusFilter::Class(2).range(), (200, 299));
    }
}
