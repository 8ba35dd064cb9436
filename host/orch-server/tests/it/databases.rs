//! Fresh databases on the machine's PostgreSQL and MariaDB for whole-gateway
//! tests. An unreachable server skips the test, or fails it under CI.

use sqlx::Connection;

pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
pub const MYSQL: &str = "mysql://root@127.0.0.1:3306";

/// A database created for one test; [`Fresh::drop_now`] removes it.
pub struct Fresh {
    /// Server URL without a database name.
    pub server: &'static str,
    /// The database's name.
    pub name: String,
}

impl Fresh {
    /// Its URL, through `host_port` when given (a proxy), else direct.
    pub fn url(&self, host_port: Option<&str>) -> String {
        match host_port {
            Some(hp) => {
                let scheme_user = self.server.rsplit_once('@').map_or("", |(s, _)| s);
                format!("{scheme_user}@{hp}/{}", self.name)
            }
            None => format!("{}/{}", self.server, self.name),
        }
    }

    pub async fn drop_now(self) {
        let _ = exec(self.server, &drop_sql(self.server, &self.name)).await;
    }
}

fn drop_sql(server: &str, name: &str) -> String {
    if server.starts_with("postgres") {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    } else {
        format!("DROP DATABASE IF EXISTS {name}")
    }
}

async fn exec(server: &str, sql: &str) -> Result<(), sqlx::Error> {
    if server.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&format!("{server}/test")).await?;
        sqlx::raw_sql(sql).execute(&mut c).await?;
    } else {
        let mut c = sqlx::MySqlConnection::connect(&format!("{server}/test")).await?;
        sqlx::raw_sql(sql).execute(&mut c).await?;
    }
    Ok(())
}

/// A new, empty database called `orch_<tag>_<pid>` on `server`.
pub async fn fresh(server: &'static str, tag: &str) -> Option<Fresh> {
    let name = format!("orch_{tag}_{}", std::process::id());
    let _ = exec(server, &drop_sql(server, &name)).await;
    match exec(server, &format!("CREATE DATABASE {name}")).await {
        Ok(()) => Some(Fresh { server, name }),
        Err(e) if orch_test_support::in_ci() => {
            panic!("{server} is unreachable and CI is set: {e}")
        }
        Err(e) => {
            eprintln!("notice: {server} is unreachable, skipping ({e})");
            None
        }
    }
}
