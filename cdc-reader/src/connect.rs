//! Source connection options: `mysql://user:password@host:port[/db][?ssl-mode=…&ssl-ca=…]`.
//!
//! `ssl-mode` follows the MySQL client (`--ssl-mode`): `disabled`, `preferred` (TLS when the
//! server offers it, without certificate checks — the client's default), `required` (TLS, no
//! certificate checks), `verify_ca` (chain checked against `ssl-ca`), `verify_identity` (chain
//! and host name). Both spellings `verify-ca` and `verify_ca` are accepted.
//!
//! The password never appears in `Debug`, `Display` or error messages: [`SourceOptions`] prints
//! its URL with the password replaced by `***`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};

use crate::error::{ReaderError, Result};

/// Default MySQL port.
pub const DEFAULT_PORT: u16 = 3306;

/// How long a connection attempt may take before it counts as unreachable. Long enough for a
/// TLS handshake across regions, short enough that a wrong host fails before the operator
/// wonders whether anything happens.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS policy towards the source, as the MySQL client's `--ssl-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server supports it, certificates unchecked.
    #[default]
    Preferred,
    /// TLS, certificates unchecked.
    Required,
    /// TLS, certificate chain checked against the CA.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyIdentity,
}

impl SslMode {
    /// Parses `disabled|preferred|required|verify_ca|verify_identity` (case-insensitive, `-` or
    /// `_`).
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text.to_ascii_lowercase().replace('-', "_").as_str() {
            "disabled" | "disable" => SslMode::Disabled,
            "preferred" | "prefer" => SslMode::Preferred,
            "required" | "require" => SslMode::Required,
            "verify_ca" => SslMode::VerifyCa,
            "verify_identity" | "verify_full" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }
}

/// Everything needed to open connections to the source.
#[derive(Clone)]
pub struct SourceOptions {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    password: Option<String>,
    /// Default database from the URL path, if any.
    pub database: Option<String>,
    /// TLS policy.
    pub ssl_mode: SslMode,
    /// CA certificate (PEM) for `verify_ca` / `verify_identity`.
    pub ssl_ca: Option<PathBuf>,
}

impl fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceOptions")
            .field("url", &self.redacted_url())
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_ca", &self.ssl_ca)
            .finish()
    }
}

impl fmt::Display for SourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

/// Replaces the password of a URL with `***` (for messages about a URL that failed to parse
/// into options, too).
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        // Unparseable: drop everything between "://" and the last '@' to be safe.
        Err(_) => match (text.find("://"), text.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://***{}", &text[..s], &text[at..]),
            _ => text.to_owned(),
        },
    }
}

impl SourceOptions {
    /// Parses a `mysql://` (or `mariadb://`) URL.
    pub fn from_url(text: &str) -> Result<SourceOptions> {
        let bad = |reason: String| ReaderError::InvalidUrl {
            url: redact_url(text),
            reason,
        };
        let u = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
        if u.scheme() != "mysql" && u.scheme() != "mariadb" {
            return Err(bad(format!(
                "the scheme must be mysql://, not {}://",
                u.scheme()
            )));
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_decode(s)
                .map_err(|_| bad("user or password is not valid percent-encoded UTF-8".into()))
        };
        let user = if u.username().is_empty() {
            "root".to_owned()
        } else {
            decode(u.username())?
        };
        let password = u.password().map(decode).transpose()?;
        let database = Some(u.path().trim_start_matches('/'))
            .filter(|d| !d.is_empty())
            .map(decode)
            .transpose()?;
        let mut opts = SourceOptions {
            host,
            port: u.port().unwrap_or(DEFAULT_PORT),
            user,
            password,
            database,
            ssl_mode: SslMode::default(),
            ssl_ca: None,
        };
        for (k, v) in u.query_pairs() {
            match k.replace('_', "-").as_str() {
                "ssl-mode" | "sslmode" => {
                    opts.ssl_mode = SslMode::parse(&v).ok_or_else(|| {
                        bad(format!(
                            "ssl-mode={v} is not one of disabled, preferred, required, verify_ca, verify_identity"
                        ))
                    })?
                }
                "ssl-ca" | "sslrootcert" => opts.ssl_ca = Some(PathBuf::from(v.as_ref())),
                other => return Err(bad(format!("unknown option {other:?} (known: ssl-mode, ssl-ca)"))),
            }
        }
        if matches!(opts.ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity)
            && opts.ssl_ca.is_none()
        {
            // Without a CA the system roots are used, which is right for a managed database
            // with a public certificate; nothing to reject here.
        }
        Ok(opts)
    }

    /// A copy with another password (the config's `source.password` overrides the URL's).
    pub fn with_password(mut self, password: &str) -> SourceOptions {
        self.password = Some(password.to_owned());
        self
    }

    /// The password, for building connections. Never log it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        let auth = match &self.password {
            Some(_) => format!("{}:***@", self.user),
            None => format!("{}@", self.user),
        };
        let db = self
            .database
            .as_deref()
            .map(|d| format!("/{d}"))
            .unwrap_or_default();
        format!("mysql://{auth}{}:{}{db}", self.host, self.port)
    }

    /// A copy pointing at another default database.
    pub fn with_database(&self, database: Option<&str>) -> SourceOptions {
        SourceOptions {
            database: database.map(str::to_owned),
            ..self.clone()
        }
    }

    fn ssl_opts(&self) -> Option<SslOpts> {
        let base = || {
            let mut s = SslOpts::default();
            if let Some(ca) = &self.ssl_ca {
                s = s.with_root_certs(vec![ca.clone().into()]);
            }
            s
        };
        match self.ssl_mode {
            SslMode::Disabled => None,
            SslMode::Preferred | SslMode::Required => Some(
                base()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            SslMode::VerifyCa => Some(base().with_danger_skip_domain_validation(true)),
            SslMode::VerifyIdentity => Some(base()),
        }
    }

    /// Driver options for one connection with the given TLS options.
    fn driver_opts(&self, ssl: Option<SslOpts>) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .db_name(self.database.clone())
            .prefer_socket(false)
            .tcp_nodelay(true)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .stmt_cache_size(64)
            .ssl_opts(ssl)
            .into()
    }

    /// Opens one connection, applying the TLS policy, within [`CONNECT_TIMEOUT`]. Credentials
    /// and reachability problems come back as [`ReaderError::AccessDenied`] and
    /// [`ReaderError::Connect`] naming the host.
    pub async fn connect(&self) -> Result<Conn> {
        let attempt = |ssl: Option<SslOpts>| async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.driver_opts(ssl))).await {
                Ok(r) => r,
                Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                    ),
                ))),
            }
        };
        let result = match attempt(self.ssl_opts()).await {
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) if self.ssl_mode == SslMode::Preferred => attempt(None).await,
            other => other,
        };
        result.map_err(|e| self.classify_connect_error(e))
    }

    fn classify_connect_error(&self, e: mysql_async::Error) -> ReaderError {
        match &e {
            mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1044 || s.code == 1698 => {
                ReaderError::AccessDenied {
                    addr: self.addr(),
                    user: self.user.clone(),
                    message: s.message.clone(),
                }
            }
            _ => ReaderError::Connect {
                addr: self.addr(),
                source: e,
            },
        }
    }
}

fn percent_decode(s: &str) -> std::result::Result<String, std::str::Utf8Error> {
    // `url` leaves user info percent-encoded; decode it as the MySQL URL convention expects.
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_with_options_and_redacts() {
        let o = SourceOptions::from_url(
            "mysql://repl:s%40cret@db1:3307/shop?ssl-mode=verify-ca&ssl-ca=/ca.pem",
        )
        .unwrap();
        assert_eq!(o.host, "db1");
        assert_eq!(o.port, 3307);
        assert_eq!(o.user, "repl");
        assert_eq!(o.password(), Some("s@cret"));
        assert_eq!(o.database.as_deref(), Some("shop"));
        assert_eq!(o.ssl_mode, SslMode::VerifyCa);
        assert_eq!(o.to_string(), "mysql://repl:***@db1:3307/shop");
        assert!(!format!("{o:?}").contains("cret"));
    }

    #[test]
    fn rejects_wrong_scheme_and_unknown_options_without_leaking_password() {
        let e = SourceOptions::from_url("postgres://u:topsecret@h/db").unwrap_err();
        assert!(e.to_string().contains("scheme must be mysql://"), "{e}");
        assert!(!e.to_string().contains("topsecret"));
        let e = SourceOptions::from_url("mysql://u:topsecret@h/db?sslmode=maybe").unwrap_err();
        assert!(e.to_string().contains("ssl-mode=maybe"), "{e}");
        let e = SourceOptions::from_url("mysql://u:topsecret@h/db?colour=blue").unwrap_err();
        assert!(e.to_string().contains("unknown option"), "{e}");
        assert!(!e.to_string().contains("topsecret"));
    }

    #[test]
    fn redact_url_handles_unparseable_text() {
        assert_eq!(redact_url("mysql://u:p@ss@@h"), "mysql://u:***@h");
        assert_eq!(
            redact_url("mysql://u:pass@h:notaport"),
            "mysql://***@h:notaport"
        );
    }
}
