//! A server-rendered sign-in UI (feature `ui`): the sign-in page `/oauth2/authorize` sends
//! browsers to, a callback page that shows what a client's redirect URI receives, and an index
//! page. Mount [`routes`] next to [`router`](super::router).
//!
//! The pages are templates under `src/http/ui/` included at build time (`sign_in.html`,
//! `callback.html`, `index.html`, `style.css`, `sign_in.js`). Every value put into a template
//! goes through [`Html`]: text is escaped for element content and quoted attributes, and only
//! markup built here from escaped parts is trusted. Each response carries a nonce-based
//! Content-Security-Policy (only the page's own script and style run, it talks only to its
//! own origin and cannot be framed), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`
//! (query strings carry states, challenges and codes), `X-Content-Type-Options: nosniff` and
//! `Cache-Control: no-store`.
//!
//! The sign-in page speaks only the `/auth/*` JSON routes, as Medplum's sign-in form does:
//! password, second factor (with enrolment and its QR code), profile choice, then the code
//! back to the client's redirect URI — or, without a client, its own PKCE exchange showing the
//! token.

mod account;

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;

use crate::engine::Engine;
use crate::model::ClientId;
use crate::scope::ScopeSet;

const SIGN_IN: &str = include_str!("sign_in.html");
const CALLBACK: &str = include_str!("callback.html");
const INDEX: &str = include_str!("index.html");
const STYLE: &str = include_str!("style.css");
const SIGN_IN_SCRIPT: &str = include_str!("sign_in.js");

/// What the pages say about the server around them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UiConfig {
    /// The product name in titles and the index heading (default "fhirgate").
    pub product: String,
    /// The client the callback page's curl hint names (default: `CLIENT_ID`).
    pub callback_client: Option<String>,
    /// An authorization request the index page links to, for trying the sign-in.
    pub try_url: Option<String>,
    /// The PKCE `code_verifier` of `try_url`, shown beside the link and in the callback
    /// page's curl hint (a published test vector, never a real one).
    pub try_verifier: Option<String>,
    /// Serve this outbox at `/outbox` (a development aid: it shows live reset links and
    /// codes; default none).
    pub outbox: Option<crate::mail::Outbox>,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            product: "fhirgate".to_owned(),
            callback_client: None,
            try_url: None,
            try_verifier: None,
            outbox: None,
        }
    }
}

#[derive(Clone)]
struct Ui {
    engine: Engine,
    config: Arc<UiConfig>,
}

/// `GET /` (index), `GET /signin`, `GET /callback`, the pages mailed links open
/// (`/setpassword/{id}/{secret}`, `/verifyemail/{id}/{secret}`) and, when configured,
/// `/outbox` — with the security headers above.
pub fn routes(engine: Engine, config: UiConfig) -> Router {
    Router::new()
        .route("/", get(index_page))
        .route("/signin", get(sign_in_page))
        .route("/callback", get(callback_page))
        .route(
            "/setpassword/{id}/{secret}",
            get(account::set_password_page),
        )
        .route(
            "/verifyemail/{id}/{secret}",
            get(account::verify_email_page),
        )
        .route("/outbox", get(account::outbox_page))
        .layer(axum::middleware::from_fn(super::no_store))
        .layer(axum::middleware::from_fn(super::trace))
        .layer(axum::middleware::from_fn(nosniff))
        .with_state(Ui {
            engine,
            config: Arc::new(config),
        })
}

/// A piece of HTML: escaped text, or markup built here from escaped parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    /// `text` escaped for element content and quoted attribute values.
    pub fn text(text: &str) -> Html {
        Html(crate::escape::html(text))
    }

    /// Markup this module wrote (templates, and tags around escaped text).
    fn trusted(markup: impl Into<String>) -> Html {
        Html(markup.into())
    }

    /// The markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Fills `{{name}}` placeholders of `template`; every value is [`Html`].
fn render(template: &str, values: &[(&str, &Html)]) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find("}}") else {
            out.push_str(rest.get(start..).unwrap_or_default());
            return out;
        };
        let name = after.get(..end).unwrap_or_default();
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value.as_str()),
            // Not a placeholder of ours: kept as written.
            None => out.push_str(rest.get(start..start + 2 + end + 2).unwrap_or_default()),
        }
        rest = after.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// `X-Content-Type-Options: nosniff` on the pages.
async fn nosniff(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .take(64)
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A fresh CSP nonce (128 bits from the engine's random source).
fn csp_nonce(engine: &Engine) -> Result<Html, StatusCode> {
    let mut bytes = [0u8; 16];
    engine.random().fill(&mut bytes).map_err(|error| {
        tracing::error!(%error, "no randomness for a CSP nonce");
        StatusCode::INTERNAL_SERVER_ERROR
    })?;
    Ok(Html::trusted(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// An HTML page with a nonce-based Content-Security-Policy.
fn html_page(nonce: &Html, html: String) -> Response {
    let nonce = nonce.as_str();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    let Ok(csp) = HeaderValue::from_str(&csp) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /signin`: where `/oauth2/authorize` sends a browser that must sign in, with the
/// authorization request in the query string.
async fn sign_in_page(State(ui): State<Ui>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let nonce = match csp_nonce(&ui.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let request = match param(&pairs, "client_id") {
        Some(client_id) => {
            let name = match ui
                .engine
                .directory()
                .client(&ClientId::new(client_id))
                .await
            {
                Ok(Some(client)) if !client.name.is_empty() => client.name,
                _ => client_id.to_owned(),
            };
            let scope = param(&pairs, "scope").unwrap_or("openid");
            Html::trusted(format!(
                "<p>to continue to <strong>{}</strong></p>\n\
                 <p class=\"muted\">Requested access: <code>{}</code></p>\n{}",
                Html::text(&name).as_str(),
                Html::text(scope).as_str(),
                scope_in_words(scope).as_str()
            ))
        }
        None => Html::trusted(
            "<p class=\"muted\">No client in the request: this page signs you in as its \
             own app and shows the access token.</p>",
        ),
    };
    let html = render(
        SIGN_IN,
        &[
            ("product", &Html::text(&ui.config.product)),
            ("nonce", &nonce),
            ("style", &Html::trusted(STYLE)),
            ("issuer", &Html::text(&ui.engine.config().oauth.issuer)),
            ("request", &request),
            ("script", &Html::trusted(SIGN_IN_SCRIPT)),
        ],
    );
    html_page(&nonce, html)
}

/// The requested scopes in words, one per line, each next to its raw form. A scope string
/// that does not parse is shown raw only (the authorization endpoint refuses it anyway).
fn scope_in_words(scope: &str) -> Html {
    let Ok(scopes) = ScopeSet::parse(scope) else {
        return Html::trusted("");
    };
    let mut list = String::from("<ul class=\"scopes\">\n");
    for (raw, words) in scopes.describe() {
        list.push_str(&format!(
            "<li>{} <code>{}</code></li>\n",
            Html::text(&words).as_str(),
            Html::text(&raw).as_str()
        ));
    }
    list.push_str("</ul>");
    Html::trusted(list)
}

/// `GET /callback`: a stand-in for a client's redirect URI that shows what it received.
async fn callback_page(State(ui): State<Ui>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let nonce = match csp_nonce(&ui.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let mut rows = String::new();
    for name in ["code", "state", "iss", "error", "error_description"] {
        if let Some(value) = param(&pairs, name) {
            rows.push_str(&format!(
                "<dt>{name}</dt><dd><code>{}</code></dd>\n",
                Html::text(value).as_str()
            ));
        }
    }
    if rows.is_empty() {
        rows.push_str(
            "<dt>nothing</dt><dd>This page shows the code or error a client receives.</dd>\n",
        );
    }
    let code = param(&pairs, "code").filter(|code| {
        code.len() <= 256
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    let issuer = &ui.engine.config().oauth.issuer;
    let hint = match code {
        Some(code) => {
            let client = ui.config.callback_client.as_deref().unwrap_or("CLIENT_ID");
            let verifier = ui
                .config
                .try_verifier
                .as_deref()
                .unwrap_or("YOUR_CODE_VERIFIER");
            let command = format!(
                "curl -s {issuer}/oauth2/token \\\n  -d grant_type=authorization_code \\\n  \
                 -d code={code} \\\n  -d client_id={client} \\\n  \
                 -d redirect_uri={issuer}/callback \\\n  -d code_verifier={verifier}"
            );
            Html::trusted(format!(
                "<p>Redeem the code within 60 seconds; it works once. With the authorize URL \
                 the server printed (PKCE pair of RFC 7636, Appendix B):</p>\n<pre>{}</pre>",
                Html::text(&command).as_str()
            ))
        }
        None => Html::trusted(""),
    };
    let html = render(
        CALLBACK,
        &[
            ("product", &Html::text(&ui.config.product)),
            ("nonce", &nonce),
            ("style", &Html::trusted(STYLE)),
            ("rows", &Html::trusted(rows)),
            ("hint", &hint),
        ],
    );
    html_page(&nonce, html)
}

/// `GET /`: where to start.
async fn index_page(State(ui): State<Ui>) -> Response {
    let nonce = match csp_nonce(&ui.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let try_link = match &ui.config.try_url {
        Some(url) => Html::trusted(format!(
            "<li><a href=\"{}\">Sign in through the authorization endpoint</a>{}</li>",
            Html::text(url).as_str(),
            ui.config
                .try_verifier
                .as_deref()
                .map(|v| format!(
                    " (PKCE code_verifier <code>{}</code>)",
                    Html::text(v).as_str()
                ))
                .unwrap_or_default()
        )),
        None => Html::trusted(""),
    };
    let html = render(
        INDEX,
        &[
            ("product", &Html::text(&ui.config.product)),
            ("nonce", &nonce),
            ("style", &Html::trusted(STYLE)),
            ("issuer", &Html::text(&ui.engine.config().oauth.issuer)),
            ("try_link", &try_link),
        ],
    );
    html_page(&nonce, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            Html::text("<b>\"x'&</b>").as_str(),
            "&lt;b&gt;&quot;x&#39;&amp;&lt;/b&gt;"
        );
    }

    #[test]
    fn render_fills_placeholders_once_and_keeps_other_braces() {
        let value = Html::text("{{nonce}}<");
        let out = render("a {{x}} b {{missing}} [0-9]{6} {{x", &[("x", &value)]);
        // A value is never re-read as a template.
        assert_eq!(out, "a {{nonce}}&lt; b {{missing}} [0-9]{6} {{x");
    }

    #[test]
    fn every_template_placeholder_is_one_the_pages_fill() {
        let filled = [
            (
                SIGN_IN,
                &["product", "nonce", "style", "issuer", "request", "script"][..],
            ),
            (CALLBACK, &["product", "nonce", "style", "rows", "hint"][..]),
            (
                INDEX,
                &["product", "nonce", "style", "issuer", "try_link"][..],
            ),
            (
                account::ACCOUNT,
                &[
                    "title", "product", "nonce", "style", "kind", "id", "secret", "script",
                ][..],
            ),
            (account::OUTBOX, &["product", "nonce", "style", "mails"][..]),
        ];
        for (template, names) in filled {
            let mut rest = template;
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                let end = after.find("}}").unwrap();
                assert!(names.contains(&&after[..end]), "{}", &after[..end]);
                rest = &after[end + 2..];
            }
        }
    }
}
