//! Captured request and response bodies, kept beside the request log for
//! debugging when capture is switched on.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{RequestLogRecord, clean_text};
use crate::database_url::Dialect;
use crate::error::StoreError;
use crate::store::{Store, with_pool};

/// Bind parameters per `request_bodies` row.
const COLUMNS_PER_ROW: usize = 4;

/// The bodies of one request, as the client sent them and as it got them back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedBodies {
    /// The request body the client sent.
    pub request: String,
    /// The response body (for streams, the bytes sent) the client received.
    pub response: String,
}

impl CapturedBodies {
    /// Cuts each body to at most `max_bytes` bytes, on a character boundary,
    /// and gives back the memory cut off (so a queued record holds no more).
    pub fn truncate(&mut self, max_bytes: usize) {
        truncate_body(&mut self.request, max_bytes);
        truncate_body(&mut self.response, max_bytes);
    }
}

/// Cuts `body` to the longest prefix of at most `max_bytes` bytes that ends on
/// a character boundary.
fn truncate_body(body: &mut String, max_bytes: usize) {
    if body.len() > max_bytes {
        body.truncate(body.floor_char_boundary(max_bytes));
        body.shrink_to_fit();
    }
}

/// Most bodies one multi-row `INSERT` may carry in `dialect`.
pub(crate) fn max_bodies_per_insert(dialect: Dialect) -> usize {
    dialect.max_bind_params() / COLUMNS_PER_ROW
}

/// Builds `INSERT INTO request_bodies (...) VALUES ...` with every value bound;
/// the request id is cut like the log's, and NULs (PostgreSQL rejects them) are dropped.
pub(crate) fn bodies_statement<'args, DB>(
    rows: &[(&RequestLogRecord, &CapturedBodies)],
) -> QueryBuilder<'args, DB>
where
    DB: Database,
    DB::Arguments<'args>: Default,
    i64: Encode<'args, DB> + Type<DB>,
    String: Encode<'args, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(
        "INSERT INTO request_bodies (request_id, ts_ms, request_body, response_body) ",
    );
    query.push_values(rows, |mut row, (record, bodies)| {
        row.push_bind(clean_text(&record.request_id))
            .push_bind(record.ts_ms)
            .push_bind(without_nul(&bodies.request))
            .push_bind(without_nul(&bodies.response));
    });
    query
}

fn without_nul(text: &str) -> String {
    text.replace('\0', "")
}

impl Store {
    /// The bodies captured for `request_id` (the newest, should several
    /// requests share the id), or `None` when none were captured or they have
    /// expired.
    pub async fn request_bodies(
        &self,
        request_id: &str,
    ) -> Result<Option<CapturedBodies>, StoreError> {
        let request_id = clean_text(request_id);
        let row: Option<(Option<String>, Option<String>)> = with_pool!(&self.backend, pool => {
            let mut query = QueryBuilder::new(
                "SELECT request_body, response_body FROM request_bodies WHERE request_id = ",
            );
            query.push_bind(request_id).push(" ORDER BY id DESC LIMIT 1");
            query.build_query_as().fetch_optional(pool).await?
        });
        Ok(row.map(|(request, response)| CapturedBodies {
            request: request.unwrap_or_default(),
            response: response.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        // "é" is two bytes: a cut at an odd byte count backs off one byte.
        let mut bodies = CapturedBodies {
            request: "é".repeat(10),
            response: "ok".to_owned(),
        };
        bodies.truncate(5);
        assert_eq!(bodies.request, "éé");
        assert_eq!(bodies.response, "ok");
        bodies.truncate(0);
        assert_eq!(bodies, CapturedBodies::default());
    }

    #[test]
    fn truncation_at_a_boundary_keeps_the_limit_exactly() {
        let mut body = "🚀a🚀".to_owned();
        truncate_body(&mut body, 5);
        assert_eq!(body, "🚀a");
        truncate_body(&mut body, 100);
        assert_eq!(body, "🚀a");
    }

    #[test]
    fn rows_per_insert_respect_bind_limits() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            assert!(max_bodies_per_insert(dialect) * COLUMNS_PER_ROW <= dialect.max_bind_params());
        }
    }
}
