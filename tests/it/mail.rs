//! `SmtpMailer` against a real SMTP conversation: a small receiver on loopback speaks the
//! server side of RFC 5321 (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) and records it.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use fhirgate::mail::{Mail, MailError, Mailer, SmtpConfig, SmtpMailer, SmtpSecurity};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the receiver saw.
#[derive(Default, Debug, Clone)]
struct Seen {
    commands: Vec<String>,
    data: String,
    auth: Option<String>,
}

/// Starts a receiver; `starttls` says whether it advertises STARTTLS (it never performs it).
async fn receiver(starttls: bool) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            let mut seen = record.lock().unwrap();
                            seen.data.push_str(&line);
                            seen.data.push('\n');
                        }
                        continue;
                    }
                    record.lock().unwrap().commands.push(line.clone());
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        if starttls {
                            b"250-test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
                        } else {
                            b"250-test\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n"
                        }
                    } else if let Some(rest) = line.strip_prefix("AUTH PLAIN ") {
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(rest)
                            .unwrap();
                        record.lock().unwrap().auth =
                            Some(String::from_utf8(raw).unwrap().replace('\0', "|"));
                        b"235 ok\r\n"
                    } else if upper.starts_with("STARTTLS") {
                        // Advertised but broken: a client must not fall back to plain text.
                        b"454 TLS not available\r\n"
                    } else if upper == "DATA" {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, seen)
}

fn message() -> Mail {
    Mail {
        to: "alice@example.org".into(),
        subject: "Clinic password reset".into(),
        text: "Open https://app.example/setpassword/1/abc".into(),
        html: "<p><a href=\"https://app.example/setpassword/1/abc\">link</a></p>".into(),
    }
}

#[tokio::test]
async fn smtp_delivers_a_multipart_message_with_auth_on_loopback() {
    let (port, seen) = receiver(false).await;
    let url = format!("smtp+plain://mailer:p%40ss@127.0.0.1:{port}");
    let config = SmtpConfig::from_url(&url, "Clinic <no-reply@clinic.example>").unwrap();
    assert!(!format!("{config:?}").contains("p@ss"));
    let mailer = SmtpMailer::new(config).unwrap();
    mailer.send(&message()).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.auth.as_deref(), Some("|mailer|p@ss"));
    assert!(
        seen.commands
            .iter()
            .any(|c| c.starts_with("MAIL FROM:<no-reply@clinic.example>")),
        "{:?}",
        seen.commands
    );
    assert!(
        seen.commands
            .iter()
            .any(|c| c.starts_with("RCPT TO:<alice@example.org>"))
    );
    assert!(seen.data.contains("Subject: Clinic password reset"));
    assert!(seen.data.contains("multipart/alternative"));
    assert!(seen.data.contains("text/plain"));
    assert!(seen.data.contains("text/html"));
    assert!(seen.data.contains("setpassword/1/abc"));
}

#[tokio::test]
async fn required_starttls_never_falls_back_to_plain_text() {
    for advertise in [false, true] {
        let (port, seen) = receiver(advertise).await;
        let mut config = SmtpConfig::new("localhost", SmtpSecurity::StartTls, "no-reply@x.example");
        config.port = port;
        config.timeout = std::time::Duration::from_secs(5);
        let mailer = SmtpMailer::new(config).unwrap();
        let error = mailer.send(&message()).await.unwrap_err();
        assert!(matches!(error, MailError::Delivery(_)), "{error:?}");
        let seen = seen.lock().unwrap().clone();
        assert!(
            !seen
                .commands
                .iter()
                .any(|c| c.starts_with("MAIL") || c.starts_with("AUTH")),
            "nothing may be sent in clear: {:?}",
            seen.commands
        );
        assert!(seen.data.is_empty());
    }
}

#[tokio::test]
async fn plain_smtp_is_refused_off_loopback_and_bad_settings_are_typed_errors() {
    let config = SmtpConfig::from_url("smtp+plain://mail.example.org:25", "a@x.example").unwrap();
    assert!(matches!(
        SmtpMailer::new(config),
        Err(MailError::Delivery(text)) if text.contains("loopback")
    ));
    let config = SmtpConfig::from_url("smtps://mail.example.org", "a@x.example").unwrap();
    assert_eq!(config.port, 465);
    assert_eq!(config.security, SmtpSecurity::ImplicitTls);
    let config = SmtpConfig::from_url("smtp://mail.example.org", "a@x.example").unwrap();
    assert_eq!(
        (config.port, config.security),
        (587, SmtpSecurity::StartTls)
    );
    assert!(matches!(
        SmtpConfig::from_url("http://mail.example.org", "a@x.example"),
        Err(MailError::Address(_))
    ));
    let config = SmtpConfig::from_url("smtps://mail.example.org", "not a mailbox").unwrap();
    assert!(matches!(
        SmtpMailer::new(config),
        Err(MailError::Address(_))
    ));
    let mut config = SmtpConfig::from_url("smtps://mail.example.org", "a@x.example").unwrap();
    config.root_certificate_pem = Some("not pem".into());
    assert!(SmtpMailer::new(config).is_err());

    let (port, _) = receiver(false).await;
    let mailer = SmtpMailer::new(
        SmtpConfig::from_url(&format!("smtp+plain://127.0.0.1:{port}"), "a@x.example").unwrap(),
    )
    .unwrap();
    let mut bad = message();
    bad.to = "not an address".into();
    assert!(matches!(
        mailer.send(&bad).await,
        Err(MailError::Address(_))
    ));
}
