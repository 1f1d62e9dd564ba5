//! [`ReqwestTransport`]: the ready [`Transport`] on reqwest with rustls (feature `reqwest`).
//!
//! Built for talking to identity providers and fetching JWKS: timeouts on connecting and on
//! the whole exchange, a cap on the response body that is enforced while reading (not only
//! from `Content-Length`), no redirects followed, and `https` only — plain `http` is allowed
//! to loopback addresses (for tests and local development) or everywhere when the host says
//! so.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ::reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use ::reqwest::{Client, ClientBuilder, Method, redirect};
use async_trait::async_trait;
use url::{Host, Url};

use super::{HttpMethod, HttpRequest, HttpResponse, Transport, TransportError};

/// Settings of a [`ReqwestTransport`]. [`Default`] gives the values documented on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReqwestOptions {
    /// Longest wait for a connection (TCP and TLS handshake). Default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for a whole exchange: connecting, sending, and reading the full response
    /// body. Default 10 s.
    pub timeout: Duration,
    /// Largest response body accepted, in bytes; a longer one fails with
    /// [`TransportError::TooLarge`]. Default 1 MiB.
    pub max_response_bytes: usize,
    /// The `User-Agent` header. Default `fhirgate/<crate version>`.
    pub user_agent: String,
    /// Allow plain `http` URLs to any host. When `false` (the default) only `https` URLs are
    /// sent, plus `http` to a loopback IP address literal (`127.0.0.0/8`, `[::1]`); the name
    /// `localhost` does not count, since it is resolved rather than known.
    pub allow_http: bool,
}

impl Default for ReqwestOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            user_agent: concat!("fhirgate/", env!("CARGO_PKG_VERSION")).to_owned(),
            allow_http: false,
        }
    }
}

/// A [`Transport`] on reqwest (rustls with the webpki root certificates, HTTP/1.1).
///
/// Redirects are never followed: a `3xx` is returned as a response, so an identity
/// provider's endpoint cannot send credentials elsewhere. Proxies from the environment
/// (`HTTPS_PROXY`, `NO_PROXY`, …) are honoured, except for loopback addresses, which are
/// always reached directly. Needs a tokio runtime. Cloning is cheap (the connection pool is
/// shared).
#[derive(Clone)]
pub struct ReqwestTransport {
    options: ReqwestOptions,
    /// For everything but loopback: environment proxies apply.
    client: Client,
    /// For loopback addresses: never through a proxy.
    direct: Client,
}

impl ReqwestTransport {
    /// Builds the transport. Fails with [`TransportError::Other`] when the HTTP client cannot
    /// be built (for example a `user_agent` that is not a valid header value).
    pub fn new(options: ReqwestOptions) -> Result<Self, TransportError> {
        let client = builder(&options)
            .build()
            .map_err(|e| TransportError::Other(format!("cannot build the HTTP client: {e}")))?;
        let direct = builder(&options)
            .no_proxy()
            .build()
            .map_err(|e| TransportError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            options,
            client,
            direct,
        })
    }

    /// The settings this transport was built with.
    pub fn options(&self) -> &ReqwestOptions {
        &self.options
    }

    /// The client for `url`, or why the URL is refused.
    fn client_for(&self, url: &Url) -> Result<&Client, TransportError> {
        let loopback = is_loopback(url);
        match url.scheme() {
            "https" => {}
            "http" if loopback || self.options.allow_http => {}
            "http" => {
                return Err(TransportError::Other(
                    "refused a plain http URL: only https is allowed, and http only to a \
                     loopback address (see ReqwestOptions::allow_http)"
                        .to_owned(),
                ));
            }
            other => {
                return Err(TransportError::Other(format!(
                    "refused the URL scheme {other:?}: only https is allowed"
                )));
            }
        }
        Ok(if loopback { &self.direct } else { &self.client })
    }
}

impl fmt::Debug for ReqwestTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestTransport")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let client = self.client_for(&request.url)?;
        let method = match request.method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
        };
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                TransportError::Other(format!("invalid request header name {name:?}"))
            })?;
            // The value may be a credential: it never goes into an error text.
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                TransportError::Other(format!("invalid value for the request header {name}"))
            })?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let mut outgoing = client.request(method, request.url).headers(headers);
        if !request.body.is_empty() {
            outgoing = outgoing.body(request.body);
        }
        let mut response = outgoing.send().await.map_err(map_error)?;

        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();

        let cap = self.options.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return Err(TransportError::TooLarge);
        }
        // Content-Length is a claim, not a limit: the body is counted as it arrives.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(map_error)? {
            if chunk.len() > cap.saturating_sub(body.len()) {
                return Err(TransportError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn builder(options: &ReqwestOptions) -> ClientBuilder {
    Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .redirect(redirect::Policy::none())
        .referer(false)
        .user_agent(options.user_agent.as_str())
}

/// Whether `url` names a loopback IP address literally.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(Host::Domain(name)) => name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn map_error(error: ::reqwest::Error) -> TransportError {
    if error.is_timeout() {
        TransportError::Timeout
    } else if error.is_connect() || error.is_request() || error.is_body() || error.is_decode() {
        // Could not connect, or the connection broke while sending or reading.
        TransportError::Connect(describe(error))
    } else {
        TransportError::Other(describe(error))
    }
}

/// The error and its causes, without the URL (its query may carry something private).
fn describe(error: ::reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;

    /// Reads one HTTP/1.1 request (head and a `Content-Length` body) off `stream`.
    async fn read_request(stream: &mut TcpStream) -> String {
        let mut buffer = Vec::new();
        let mut chunk = [0_u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    break;
                }
            }
        }
        String::from_utf8(buffer).unwrap()
    }

    /// A server that answers one connection with `response` (raw bytes) and hands back the
    /// request it read.
    async fn serve_once(response: Vec<u8>) -> (SocketAddr, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let request = read_request(&mut stream).await;
            // The client may hang up early (oversized bodies): write errors are expected.
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
            request
        });
        (addr, task)
    }

    fn transport() -> ReqwestTransport {
        ReqwestTransport::new(ReqwestOptions::default()).unwrap()
    }

    fn url(addr: SocketAddr, path: &str) -> Url {
        Url::parse(&format!("http://{addr}{path}")).unwrap()
    }

    fn response(status_line: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
        let mut text = format!("HTTP/1.1 {status_line}\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        text.into_bytes()
    }

    #[tokio::test]
    async fn get_round_trip() {
        let (addr, server) = serve_once(response(
            "200 OK",
            &[("content-type", "application/json"), ("x-answer", "42")],
            r#"{"keys":[]}"#,
        ))
        .await;
        let mut request = HttpRequest::get(url(addr, "/jwks?x=1"));
        request
            .headers
            .push(("accept".into(), "application/json".into()));
        let answer = transport().send(request).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, br#"{"keys":[]}"#);
        assert_eq!(answer.header("X-Answer"), Some("42"));
        assert_eq!(answer.header("content-type"), Some("application/json"));

        let seen = server.await.unwrap().to_ascii_lowercase();
        assert!(seen.starts_with("get /jwks?x=1 http/1.1\r\n"), "{seen}");
        assert!(seen.contains("\r\naccept: application/json\r\n"), "{seen}");
        let agent = format!("\r\nuser-agent: fhirgate/{}\r\n", env!("CARGO_PKG_VERSION"));
        assert!(seen.contains(&agent), "{seen}");
    }

    #[tokio::test]
    async fn post_round_trip() {
        let (addr, server) = serve_once(response(
            "200 OK",
            &[("content-type", "application/json")],
            r#"{"access_token":"t"}"#,
        ))
        .await;
        let request = HttpRequest {
            method: HttpMethod::Post,
            url: url(addr, "/token"),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Authorization".into(), "Basic YTpi".into()),
            ],
            body: b"grant_type=authorization_code&code=abc".to_vec(),
        };
        let answer = transport().send(request).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, br#"{"access_token":"t"}"#);

        let seen = server.await.unwrap();
        let lower = seen.to_ascii_lowercase();
        assert!(lower.starts_with("post /token http/1.1\r\n"), "{seen}");
        assert!(
            lower.contains("\r\ncontent-type: application/x-www-form-urlencoded\r\n"),
            "{seen}"
        );
        assert!(seen.contains("\r\nauthorization: Basic YTpi\r\n"), "{seen}");
        assert!(lower.contains("\r\ncontent-length: 38\r\n"), "{seen}");
        assert!(
            seen.ends_with("\r\n\r\ngrant_type=authorization_code&code=abc"),
            "{seen}"
        );
    }

    #[tokio::test]
    async fn error_statuses_are_responses() {
        for (status_line, status) in [
            ("404 Not Found", 404),
            ("500 Internal Server Error", 500),
            ("400 Bad Request", 400),
        ] {
            let (addr, _server) = serve_once(response(status_line, &[], "nope")).await;
            let answer = transport()
                .send(HttpRequest::get(url(addr, "/")))
                .await
                .unwrap();
            assert_eq!(answer.status, status);
            assert_eq!(answer.body, b"nope");
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        // The target would answer 200 if the redirect were followed.
        let (target, _target_server) = serve_once(response("200 OK", &[], "followed")).await;
        let location = format!("http://{target}/elsewhere");
        let (addr, _server) = serve_once(response(
            "302 Found",
            &[("location", location.as_str())],
            "",
        ))
        .await;
        let answer = transport()
            .send(HttpRequest::get(url(addr, "/token")))
            .await
            .unwrap();
        assert_eq!(answer.status, 302);
        assert_eq!(answer.header("location"), Some(location.as_str()));
        assert!(answer.body.is_empty());
    }

    #[tokio::test]
    async fn whole_request_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = read_request(&mut stream).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        });
        let transport = ReqwestTransport::new(ReqwestOptions {
            timeout: Duration::from_millis(300),
            ..ReqwestOptions::default()
        })
        .unwrap();
        let started = Instant::now();
        let outcome = transport.send(HttpRequest::get(url(addr, "/"))).await;
        assert_eq!(outcome, Err(TransportError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn timeout_covers_a_stalled_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = read_request(&mut stream).await;
            // The head and part of the promised body, then nothing.
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly a part")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        });
        let transport = ReqwestTransport::new(ReqwestOptions {
            timeout: Duration::from_millis(300),
            ..ReqwestOptions::default()
        })
        .unwrap();
        let started = Instant::now();
        let outcome = transport.send(HttpRequest::get(url(addr, "/"))).await;
        assert_eq!(outcome, Err(TransportError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    fn small_cap() -> ReqwestTransport {
        ReqwestTransport::new(ReqwestOptions {
            max_response_bytes: 1000,
            ..ReqwestOptions::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_body_at_the_cap_is_accepted() {
        let body = "a".repeat(1000);
        let (addr, _server) = serve_once(response("200 OK", &[], &body)).await;
        let answer = small_cap()
            .send(HttpRequest::get(url(addr, "/")))
            .await
            .unwrap();
        assert_eq!(answer.body.len(), 1000);
    }

    #[tokio::test]
    async fn oversized_body_with_content_length() {
        let body = "a".repeat(1001);
        let (addr, _server) = serve_once(response("200 OK", &[], &body)).await;
        let outcome = small_cap().send(HttpRequest::get(url(addr, "/"))).await;
        assert_eq!(outcome, Err(TransportError::TooLarge));
    }

    #[tokio::test]
    async fn oversized_chunked_body_without_content_length() {
        let mut raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            raw.extend_from_slice(b"64\r\n");
            raw.extend_from_slice(&[b'b'; 100]);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let (addr, _server) = serve_once(raw).await;
        let outcome = small_cap().send(HttpRequest::get(url(addr, "/"))).await;
        assert_eq!(outcome, Err(TransportError::TooLarge));
    }

    #[tokio::test]
    async fn oversized_body_until_close_without_content_length() {
        let mut raw = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        raw.extend_from_slice(&[b'c'; 5000]);
        let (addr, _server) = serve_once(raw).await;
        let outcome = small_cap().send(HttpRequest::get(url(addr, "/"))).await;
        assert_eq!(outcome, Err(TransportError::TooLarge));
    }

    #[tokio::test]
    async fn a_short_content_length_cannot_carry_more() {
        // Claims 10 bytes, then the connection delivers far more before closing: reqwest
        // stops at the declared length, so the answer is the 10 bytes and nothing beyond.
        let mut raw =
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n".to_vec();
        raw.extend_from_slice(&[b'd'; 5000]);
        let (addr, _server) = serve_once(raw).await;
        let answer = small_cap()
            .send(HttpRequest::get(url(addr, "/")))
            .await
            .unwrap();
        assert_eq!(answer.body.len(), 10);
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() {
        let transport = transport();
        for refused in [
            "http://example.org/.well-known/openid-configuration",
            "http://10.0.0.1/token",
            "http://localhost:1/token",
        ] {
            let outcome = transport
                .send(HttpRequest::get(Url::parse(refused).unwrap()))
                .await;
            let Err(TransportError::Other(text)) = outcome else {
                panic!("{refused}: {outcome:?}");
            };
            assert!(text.contains("https"), "{text}");
        }
        for scheme in ["ftp://example.org/x", "file:///etc/passwd"] {
            let outcome = transport
                .send(HttpRequest::get(Url::parse(scheme).unwrap()))
                .await;
            let Err(TransportError::Other(text)) = outcome else {
                panic!("{scheme}: {outcome:?}");
            };
            assert!(text.contains("scheme"), "{text}");
        }
    }

    #[test]
    fn loopback_literals() {
        let yes = |u: &str| is_loopback(&Url::parse(u).unwrap());
        assert!(yes("http://127.0.0.1:8080/"));
        assert!(yes("http://127.1.2.3/"));
        assert!(yes("http://[::1]:9/"));
        assert!(yes("http://[::ffff:127.0.0.1]/"));
        assert!(!yes("http://localhost/"));
        assert!(!yes("http://128.0.0.1/"));
        assert!(!yes("http://[::2]/"));
        assert!(!yes("http://example.org/"));
    }

    #[tokio::test]
    async fn allow_http_lets_plain_http_through() {
        // Still loopback here (no network in tests), but through the allow_http branch with
        // a name: the failure is then a connection error, not a refusal.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let transport = ReqwestTransport::new(ReqwestOptions {
            allow_http: true,
            ..ReqwestOptions::default()
        })
        .unwrap();
        let outcome = transport
            .send(HttpRequest::get(
                Url::parse(&format!("http://localhost:{port}/")).unwrap(),
            ))
            .await;
        assert!(
            matches!(outcome, Err(TransportError::Connect(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn connection_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let outcome = transport().send(HttpRequest::get(url(addr, "/"))).await;
        let Err(TransportError::Connect(text)) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(!text.is_empty());
    }

    #[tokio::test]
    async fn a_connection_closed_mid_body_is_a_connect_error() {
        let (addr, _server) =
            serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort".to_vec()).await;
        let outcome = transport().send(HttpRequest::get(url(addr, "/"))).await;
        assert!(
            matches!(outcome, Err(TransportError::Connect(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn invalid_request_headers_are_refused_without_their_value() {
        let (addr, _server) = serve_once(response("200 OK", &[], "")).await;
        let mut request = HttpRequest::get(url(addr, "/"));
        request
            .headers
            .push(("Authorization".into(), "Bearer secret\r\nX: y".into()));
        let outcome = transport().send(request).await;
        let Err(TransportError::Other(text)) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(!text.contains("secret"), "{text}");

        let mut request = HttpRequest::get(url(addr, "/"));
        request.headers.push(("bad name".into(), "v".into()));
        let outcome = transport().send(request).await;
        assert!(
            matches!(outcome, Err(TransportError::Other(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn defaults_and_debug() {
        let options = ReqwestOptions::default();
        assert_eq!(options.connect_timeout, Duration::from_secs(5));
        assert_eq!(options.timeout, Duration::from_secs(10));
        assert_eq!(options.max_response_bytes, 1024 * 1024);
        assert_eq!(
            options.user_agent,
            format!("fhirgate/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(!options.allow_http);
        let shown = format!("{:?}", transport());
        assert!(shown.starts_with("ReqwestTransport"), "{shown}");
    }

    #[test]
    fn a_bad_user_agent_is_an_error_not_a_panic() {
        let outcome = ReqwestTransport::new(ReqwestOptions {
            user_agent: "bad\nagent".into(),
            ..ReqwestOptions::default()
        });
        assert!(matches!(outcome, Err(TransportError::Other(_))));
    }
}
