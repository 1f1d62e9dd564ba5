//! [`SmtpMailer`]: mail over SMTP with `lettre` and rustls.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use super::{Mail, MailError, Mailer};

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// Plain SMTP upgraded with `STARTTLS`, which is required: a server that does not offer
    /// it gets nothing (no silent downgrade). The usual port is 587.
    StartTls,
    /// TLS from the first byte ("SMTPS"). The usual port is 465.
    ImplicitTls,
    /// No encryption. Refused unless the host is a loopback address (a local relay or a
    /// test receiver), so credentials and links never cross a network in clear.
    PlainLoopback,
}

/// Where and how to send mail.
#[derive(Clone)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// The mail server's host name (checked against its certificate) or address.
    pub host: String,
    /// The port (default: 587 for [`SmtpSecurity::StartTls`], 465 for
    /// [`SmtpSecurity::ImplicitTls`], 25 for [`SmtpSecurity::PlainLoopback`]).
    pub port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    /// `(user, password)` for `AUTH`, if the server needs it. Redacted from `Debug`.
    pub credentials: Option<(String, Zeroizing<String>)>,
    /// The sender, as `Name <address>` or a bare address.
    pub from: String,
    /// Connect and command timeout (default 10 s).
    pub timeout: Duration,
    /// An extra trusted root certificate (PEM) for a private mail server; the web PKI
    /// roots are always trusted.
    pub root_certificate_pem: Option<String>,
}

impl SmtpConfig {
    /// A configuration for `host` with `security`, the usual port for it, no credentials
    /// and a 10-second timeout.
    pub fn new(host: impl Into<String>, security: SmtpSecurity, from: impl Into<String>) -> Self {
        let port = match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::ImplicitTls => 465,
            SmtpSecurity::PlainLoopback => 25,
        };
        Self {
            host: host.into(),
            port,
            security,
            credentials: None,
            from: from.into(),
            timeout: Duration::from_secs(10),
            root_certificate_pem: None,
        }
    }

    /// Reads `smtp://[user[:password]@]host[:port]` (STARTTLS required),
    /// `smtps://…` (implicit TLS) or `smtp+plain://…` (no TLS, loopback only); the sender is
    /// `from`. User and password are percent-decoded.
    pub fn from_url(url: &str, from: impl Into<String>) -> Result<Self, MailError> {
        let bad = |why: &str| MailError::Address(format!("SMTP URL: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let security = match parsed.scheme() {
            "smtp" => SmtpSecurity::StartTls,
            "smtps" => SmtpSecurity::ImplicitTls,
            "smtp+plain" => SmtpSecurity::PlainLoopback,
            other => return Err(bad(&format!("unknown scheme {other:?}"))),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let mut config = Self::new(host, security, from);
        if let Some(port) = parsed.port() {
            config.port = port;
        }
        if !parsed.username().is_empty() {
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let user = decode(parsed.username());
            let password = Zeroizing::new(decode(parsed.password().unwrap_or_default()));
            config.credentials = Some((user, password));
        }
        Ok(config)
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Sends mail over SMTP (feature `smtp`). Connections are pooled by `lettre`.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`. Fails on a sender that is not a mailbox, an unreadable root
    /// certificate, or [`SmtpSecurity::PlainLoopback`] to a host that is not a loopback
    /// address.
    pub fn new(config: SmtpConfig) -> Result<Self, MailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| MailError::Address(format!("sender {:?}: {e}", config.from)))?;
        let tls = match config.security {
            SmtpSecurity::PlainLoopback => {
                let loopback = config.host == "localhost"
                    || config
                        .host
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return Err(MailError::Delivery(format!(
                        "plain SMTP is only allowed to a loopback host, not {:?}",
                        config.host
                    )));
                }
                Tls::None
            }
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(&config)?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters(&config)?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
                .port(config.port)
                .tls(tls)
                .timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(pem) = &config.root_certificate_pem {
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(MailError::Delivery(
                "root certificate: no PEM certificate block".into(),
            ));
        }
        let certificate = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| MailError::Delivery(format!("root certificate: {e}")))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| MailError::Delivery(format!("TLS setup: {e}")))
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError::Address(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| MailError::Address(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Delivery(e.to_string()))
    }
}
