//! Inserting a batch's request-log rows, per database.
//!
//! SQLite and MySQL get multi-row `INSERT`s with every value bound. On
//! PostgreSQL the rows go in as one `COPY ... FROM STDIN` in text format: the
//! server parses one tab-separated line per row instead of binding an
//! `INSERT` with 18 parameters per row (and the gateway skips building that
//! statement). COPY data is not SQL: values are escaped for the text format,
//! never spliced into a statement.

use std::fmt::Write as _;
use std::future::Future;

use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use super::{RequestLogRecord, clean_chars, insert_statement, max_rows_per_insert, saturating_i64};
use crate::database_url::Dialect;
use crate::error::StoreError;

/// A connection that can insert request-log rows.
pub(super) trait InsertRows {
    /// Inserts `rows` into `request_log`, in the connection's transaction.
    fn insert_rows(
        &mut self,
        rows: &[&RequestLogRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl InsertRows for SqliteConnection {
    async fn insert_rows(&mut self, rows: &[&RequestLogRecord]) -> Result<(), StoreError> {
        for chunk in rows.chunks(max_rows_per_insert(Dialect::Sqlite)) {
            insert_statement(chunk).build().execute(&mut *self).await?;
        }
        Ok(())
    }
}

impl InsertRows for MySqlConnection {
    async fn insert_rows(&mut self, rows: &[&RequestLogRecord]) -> Result<(), StoreError> {
        for chunk in rows.chunks(max_rows_per_insert(Dialect::MySql)) {
            insert_statement(chunk).build().execute(&mut *self).await?;
        }
        Ok(())
    }
}

/// Starts the COPY of the columns [`copy_text`] writes.
const COPY_IN: &str = concat!("COPY request_log (", log_columns!(), ") FROM STDIN");

impl InsertRows for PgConnection {
    async fn insert_rows(&mut self, rows: &[&RequestLogRecord]) -> Result<(), StoreError> {
        let data = copy_text(rows);
        let mut copy = self.copy_in_raw(COPY_IN).await?;
        if let Err(e) = copy.send(data).await {
            // Leaves the connection usable; the server's error is expected.
            let _ = copy.abort("the request-log batch could not be sent").await;
            return Err(e.into());
        }
        copy.finish().await?;
        Ok(())
    }
}

/// `rows` in COPY's text format: one line per row, the values in
/// [`log_columns!`] order separated by tabs, `\N` for NULL. Text values are
/// cleaned like bound ones ([`clean_chars`]), then escaped.
fn copy_text(rows: &[&RequestLogRecord]) -> Vec<u8> {
    let mut out = String::with_capacity(rows.len() * 160);
    for rec in rows {
        let fields: [Field<'_>; 18] = [
            Field::Int(rec.ts_ms),
            Field::Text(Some(&rec.request_id)),
            Field::Text(Some(&rec.ingress_dialect)),
            Field::Text(Some(&rec.requested_model)),
            Field::Text(rec.provider.as_deref()),
            Field::Text(rec.upstream_model.as_deref()),
            Field::Text(rec.plugin.as_deref()),
            Field::Int(i64::from(rec.status)),
            Field::Text(rec.error_class.as_deref()),
            Field::Int(i64::from(i32::try_from(rec.attempts).unwrap_or(i32::MAX))),
            Field::Int(saturating_i64(rec.latency_us)),
            Field::OptInt(rec.ttft_us.map(saturating_i64)),
            Field::OptInt(rec.input_tokens.map(i64::from)),
            Field::OptInt(rec.output_tokens.map(i64::from)),
            Field::OptInt(rec.cached_tokens.map(i64::from)),
            Field::Bool(rec.streamed),
            Field::Text(Some(rec.outcome.as_str())),
            Field::OptInt(rec.client_key_id),
        ];
        for (index, field) in fields.iter().enumerate() {
            if index > 0 {
                out.push('\t');
            }
            field.write(&mut out);
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// One value of a COPY line.
enum Field<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    Text(Option<&'a str>),
}

impl Field<'_> {
    fn write(&self, out: &mut String) {
        match self {
            Self::Int(n) | Self::OptInt(Some(n)) => {
                let _ = write!(out, "{n}");
            }
            Self::Bool(b) => out.push(if *b { 't' } else { 'f' }),
            Self::Text(Some(text)) => push_escaped(out, text),
            Self::OptInt(None) | Self::Text(None) => out.push_str("\\N"),
        }
    }
}

/// Writes `text`, cleaned ([`clean_chars`]), escaped for COPY's text
/// format: backslash and the three characters that would end a value or a
/// line.
fn push_escaped(out: &mut String, text: &str) {
    for c in clean_chars(text) {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_log::Outcome;

    #[test]
    fn copy_lines_escape_text_and_mark_nulls() {
        let rec = RequestLogRecord {
            ts_ms: 1_700_000_000_000,
            request_id: "a\tb\\c\nd\re\0f".to_owned(),
            ingress_dialect: "openai".to_owned(),
            requested_model: "m".repeat(300),
            provider: None,
            upstream_model: Some("up".to_owned()),
            plugin: None,
            status: 429,
            error_class: Some("rate_limited".to_owned()),
            attempts: u32::MAX,
            latency_us: u64::MAX,
            ttft_us: None,
            input_tokens: Some(3),
            output_tokens: None,
            cached_tokens: Some(0),
            streamed: true,
            outcome: Outcome::Error,
            client_key_id: Some(-1),
        };
        let text = String::from_utf8(copy_text(&[&rec, &rec])).expect("utf-8");
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2);
        let values: Vec<&str> = lines[0].split('\t').collect();
        assert_eq!(values.len(), 18);
        assert_eq!(values[1], "a\\tb\\\\c\\nd\\ref");
        assert_eq!(values[3], "m".repeat(255));
        assert_eq!(
            values[4..],
            [
                "\\N",
                "up",
                "\\N",
                "429",
                "rate_limited",
                "2147483647",
                "9223372036854775807",
                "\\N",
                "3",
                "\\N",
                "0",
                "t",
                "error",
                "-1"
            ]
        );
    }
}
