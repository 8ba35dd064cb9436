//! Database URLs: which backend a URL names, and how to show one without its password.

use crate::error::StoreError;

/// The SQL dialect (and driver) behind a [`crate::Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite through a local file (`sqlite://path/to/file.db`).
    Sqlite,
    /// PostgreSQL (`postgres://...` or `postgresql://...`).
    Postgres,
    /// MySQL or MariaDB (`mysql://...` or `mariadb://...`).
    MySql,
}

impl Dialect {
    /// Picks the dialect from the URL's scheme.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = scheme(url);
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            _ => Err(StoreError::UnsupportedScheme {
                scheme: scheme.unwrap_or("<none>").to_owned(),
            }),
        }
    }

    /// Most bind parameters one statement may carry.
    ///
    /// SQLite's compiled-in `SQLITE_MAX_VARIABLE_NUMBER` (32766 since 3.32, and
    /// the bundled library is newer); PostgreSQL and MySQL count parameters in a
    /// 16-bit field.
    pub fn max_bind_params(self) -> usize {
        match self {
            Self::Sqlite => 32_766,
            Self::Postgres | Self::MySql => 65_535,
        }
    }

    /// Lower-case name for logs: `sqlite`, `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scheme before the first `:`, if it looks like one (RFC 3986 characters).
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let starts_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_valid = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (starts_alpha && rest_valid).then_some(scheme)
}

/// Returns `url` with its password replaced by `***`, safe to log or show in errors.
///
/// Covers the password in the userinfo (`postgres://user:secret@host/db`) and in
/// query parameters whose name contains `password` (`?password=secret`).
/// A string that is not a recognisable URL is replaced entirely by `<redacted>`,
/// since there is no telling where a secret might sit in it.
pub fn redact_url(url: &str) -> String {
    let Some(scheme) = scheme(url) else {
        return "<redacted>".to_owned();
    };
    let after_scheme = &url[scheme.len() + 1..];

    // Split off the fragment and query first; they follow the authority and path.
    let (before_fragment, fragment) = match after_scheme.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (after_scheme, None),
    };
    let (hier, query) = match before_fragment.split_once('?') {
        Some((hier, query)) => (hier, Some(query)),
        None => (before_fragment, None),
    };

    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push(':');
    match hier.strip_prefix("//") {
        Some(rest) => {
            out.push_str("//");
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(hier),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _value)) if key.to_ascii_lowercase().contains("password") => {
                    out.push_str(key);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_from_scheme() {
        assert_eq!(
            Dialect::from_url("sqlite://data/x.db").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Dialect::from_url("sqlite::memory:").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Dialect::from_url("postgres://h/db").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(
            Dialect::from_url("postgresql://h/db").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(Dialect::from_url("MySQL://h/db").unwrap(), Dialect::MySql);
        assert_eq!(Dialect::from_url("mariadb://h/db").unwrap(), Dialect::MySql);
    }

    #[test]
    fn unsupported_scheme_does_not_echo_the_url() {
        let err = Dialect::from_url("redis://:hunter2@host:6379").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`redis`"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");

        let err = Dialect::from_url("user:hunter2@host/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));

        let err = Dialect::from_url("no scheme at all").unwrap_err();
        assert!(err.to_string().contains("<none>"));
    }

    #[test]
    fn redacts_userinfo_password() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.local:5432/orch?sslmode=require"),
            "postgres://app:***@db.local:5432/orch?sslmode=require"
        );
        // A password containing '@' unencoded: the host starts after the last '@'.
        assert_eq!(
            redact_url("mysql://root:p@ss@127.0.0.1/test"),
            "mysql://root:***@127.0.0.1/test"
        );
        // A password containing ':' stays hidden too.
        assert_eq!(
            redact_url("mysql://root:a:b@h/test"),
            "mysql://root:***@h/test"
        );
    }

    #[test]
    fn keeps_urls_without_password() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "mysql://127.0.0.1/test",
            "sqlite://data/x.db",
            "sqlite:///var/lib/orch/orch.db?mode=rwc",
            "sqlite::memory:",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn redacts_password_query_parameters() {
        assert_eq!(
            redact_url("postgres://h/db?user=app&password=hunter2&sslpassword=x#frag"),
            "postgres://h/db?user=app&password=***&sslpassword=***#frag"
        );
    }

    #[test]
    fn unrecognisable_strings_are_fully_redacted() {
        assert_eq!(redact_url("hunter2"), "<redacted>");
        assert_eq!(redact_url(":hunter2@host"), "<redacted>");
    }
}
