//! Target connection options: `postgres://user:password@host:port/database[?sslmode=…]`.
//!
//! `sslmode` follows libpq: `disable`, `prefer` (the default: TLS when offered, certificate
//! unchecked), `require` (TLS, certificate unchecked), `verify-ca` (chain checked against
//! `sslrootcert`, or the webpki roots), `verify-full` (chain and host name). libpq's `prefer`
//! and `require` do not check certificates either; we keep that meaning so that a URL behaves
//! the same with `psql` and with my2pg.
//!
//! The password never appears in `Debug`, `Display` or error messages.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::Client;
use tracing::debug;

use crate::error::{Result, SinkError};

/// How long a connection attempt may take before it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS policy towards the target, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when offered, certificate unchecked.
    #[default]
    Prefer,
    /// TLS, certificate unchecked.
    Require,
    /// TLS, chain checked.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's names (also accepting MySQL-style `disabled`, `required`, …).
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => SslMode::Disable,
            "prefer" | "preferred" | "allow" => SslMode::Prefer,
            "require" | "required" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" | "verify-identity" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Everything needed to open connections to the target.
#[derive(Clone)]
pub struct TargetOptions {
    config: tokio_postgres::Config,
    /// TLS policy.
    pub ssl_mode: SslMode,
    /// CA certificate (PEM) for `verify-ca` / `verify-full`.
    pub ssl_root_cert: Option<PathBuf>,
    host: String,
    port: u16,
    user: String,
    database: String,
    has_password: bool,
}

impl fmt::Debug for TargetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetOptions")
            .field("url", &self.redacted_url())
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

impl fmt::Display for TargetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => match (text.find("://"), text.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://***{}", &text[..s], &text[at..]),
            _ => text.to_owned(),
        },
    }
}

impl TargetOptions {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn from_url(text: &str) -> Result<TargetOptions> {
        let bad = |reason: String| SinkError::InvalidUrl {
            url: redact(text),
            reason,
        };
        let u = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
        if u.scheme() != "postgres" && u.scheme() != "postgresql" {
            return Err(bad(format!(
                "the scheme must be postgres://, not {}://",
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
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("user or password is not valid percent-encoded UTF-8".into()))
        };
        let user = if u.username().is_empty() {
            "postgres".to_owned()
        } else {
            decode(u.username())?
        };
        let password = u.password().map(decode).transpose()?;
        let database = decode(u.path().trim_start_matches('/'))?;
        let database = if database.is_empty() {
            user.clone()
        } else {
            database
        };
        let port = u.port().unwrap_or(5432);
        let mut ssl_mode = SslMode::default();
        let mut ssl_root_cert = None;
        let mut application_name = "my2pg".to_owned();
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "sslmode" | "ssl-mode" | "ssl_mode" => {
                    ssl_mode = SslMode::parse(&v).ok_or_else(|| {
                        bad(format!("sslmode={v} is not one of disable, prefer, require, verify-ca, verify-full"))
                    })?
                }
                "sslrootcert" | "ssl-ca" => ssl_root_cert = Some(PathBuf::from(v.as_ref())),
                "application_name" => application_name = v.into_owned(),
                other => {
                    return Err(bad(format!("unknown option {other:?} (known: sslmode, sslrootcert, application_name)")));
                }
            }
        }
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(&user)
            .dbname(&database)
            .application_name(&application_name)
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(match ssl_mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
        if let Some(p) = &password {
            config.password(p);
        }
        Ok(TargetOptions {
            config,
            ssl_mode,
            ssl_root_cert,
            host,
            port,
            user,
            database,
            has_password: password.is_some(),
        })
    }

    /// A copy with another password (the config's `target.password` overrides the URL's).
    pub fn with_password(mut self, password: &str) -> TargetOptions {
        self.config.password(password);
        self.has_password = true;
        self
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// A copy pointing at another database (used to create the target database).
    pub fn with_database(&self, database: &str) -> TargetOptions {
        let mut o = self.clone();
        o.config.dbname(database);
        o.database = database.to_owned();
        o
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        let auth = if self.has_password {
            format!("{}:***@", self.user)
        } else {
            format!("{}@", self.user)
        };
        format!(
            "postgres://{auth}{}:{}/{}",
            self.host, self.port, self.database
        )
    }

    /// Opens one connection and spawns its I/O task. Credentials, missing database and
    /// reachability problems come back as distinct errors naming the host.
    pub async fn connect(&self) -> Result<Client> {
        let result = if self.ssl_mode == SslMode::Disable {
            self.config
                .connect(tokio_postgres::NoTls)
                .await
                .map(|(client, conn)| {
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            debug!(error = %e, "postgres connection ended");
                        }
                    });
                    client
                })
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.rustls_config()?);
            self.config.connect(tls).await.map(|(client, conn)| {
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(error = %e, "postgres connection ended");
                    }
                });
                client
            })
        };
        result.map_err(|e| self.classify_connect_error(e))
    }

    fn classify_connect_error(&self, e: tokio_postgres::Error) -> SinkError {
        if let Some(db) = e.as_db_error() {
            match db.code().code() {
                "28P01" | "28000" => {
                    return SinkError::AccessDenied {
                        addr: self.addr(),
                        user: self.user.clone(),
                        message: db.message().to_owned(),
                    };
                }
                "3D000" => {
                    return SinkError::NoDatabase {
                        addr: self.addr(),
                        database: self.database.clone(),
                    };
                }
                _ => {}
            }
        }
        SinkError::Connect {
            addr: self.addr(),
            source: e,
        }
    }

    fn rustls_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SinkError::Tls {
                reason: e.to_string(),
            })?;
        let roots = || -> Result<rustls::RootCertStore> {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ssl_root_cert {
                Some(path) => {
                    let certs =
                        CertificateDer::pem_file_iter(path).map_err(|e| SinkError::Tls {
                            reason: format!("cannot read {}: {e}", path.display()),
                        })?;
                    for cert in certs {
                        let cert = cert.map_err(|e| SinkError::Tls {
                            reason: format!("{}: {e}", path.display()),
                        })?;
                        roots.add(cert).map_err(|e| SinkError::Tls {
                            reason: format!("{}: {e}", path.display()),
                        })?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            Ok(roots)
        };
        let config = match self.ssl_mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth(),
            SslMode::VerifyCa => {
                let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots()?),
                    provider,
                )
                .build()
                .map_err(|e| SinkError::Tls {
                    reason: e.to_string(),
                })?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                    .with_no_client_auth()
            }
            SslMode::VerifyFull => builder
                .with_root_certificates(roots()?)
                .with_no_client_auth(),
        };
        Ok(config)
    }
}

impl FromStr for TargetOptions {
    type Err = SinkError;
    fn from_str(s: &str) -> Result<Self> {
        TargetOptions::from_url(s)
    }
}

/// `sslmode=prefer|require`: encryption without authentication of the server, as libpq.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let o = TargetOptions::from_url("postgres://app:p%2Fw@pg1:5433/shop?sslmode=verify-full")
            .unwrap();
        assert_eq!(o.addr(), "pg1:5433");
        assert_eq!(o.database(), "shop");
        assert_eq!(o.ssl_mode, SslMode::VerifyFull);
        assert_eq!(o.to_string(), "postgres://app:***@pg1:5433/shop");
        assert!(!format!("{o:?}").contains("p/w"));
    }

    #[test]
    fn rejects_wrong_scheme_and_bad_sslmode() {
        let e = TargetOptions::from_url("mysql://u:secret@h:3306/x").unwrap_err();
        assert!(e.to_string().contains("scheme must be postgres://"), "{e}");
        assert!(!e.to_string().contains("secret"));
        let e = TargetOptions::from_url("postgres://u:secret@h/x?sslmode=sometimes").unwrap_err();
        assert!(e.to_string().contains("sslmode=sometimes"), "{e}");
    }
}
