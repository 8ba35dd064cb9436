//! Integration tests for `orch-store` against real SQLite, PostgreSQL and
//! MariaDB databases (see `support` for how they are found and isolated).

mod catalog;
mod connect;
mod log_writer;
mod migrations;
mod support;
mod usage;
