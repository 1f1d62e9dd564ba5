//! The texts of account mail, branded with the project's name.
//!
//! Every message comes as plain text and HTML with the same content; the HTML escapes every
//! value it embeds. The brand is the project's name (or the server's product name for
//! server-scoped accounts) — never "Medplum".

use super::Mail;
use crate::escape;

/// Who the mail is from, as the reader sees it: the project's (or server's) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    /// The name shown in subjects and greetings.
    pub name: String,
}

impl Brand {
    /// A brand named `name` (blank names become "your account").
    pub fn new(name: &str) -> Self {
        let name = name.trim();
        Self {
            name: if name.is_empty() {
                "your account".to_owned()
            } else {
                name.to_owned()
            },
        }
    }
}

fn mail(to: &str, subject: String, paragraphs: &[String], link: Option<&str>) -> Mail {
    let mut text = String::new();
    let mut html = String::from("<!doctype html><html><body>");
    for p in paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str("<p>");
        html.push_str(&escape::html(p));
        html.push_str("</p>");
    }
    if let Some(link) = link {
        text.push_str(link);
        text.push('\n');
        let link = escape::html(link);
        html.push_str(&format!("<p><a href=\"{link}\">{link}</a></p>"));
    }
    html.push_str("</body></html>");
    Mail {
        to: to.to_owned(),
        subject,
        text,
        html,
    }
}

/// A password-reset link, valid for `minutes`.
pub fn password_reset(to: &str, brand: &Brand, link: &str, minutes: i64) -> Mail {
    mail(
        to,
        format!("{} password reset", brand.name),
        &[
            format!(
                "Someone asked to reset the password of your {} account.",
                brand.name
            ),
            format!(
                "To choose a new password, open this link within {minutes} minutes. \
                 If it was not you, ignore this message: your password stays as it is."
            ),
        ],
        Some(link),
    )
}

/// An invitation into a project, with a link that sets a password (valid for `days`).
pub fn invitation(to: &str, brand: &Brand, link: &str, days: i64) -> Mail {
    mail(
        to,
        format!("You are invited to {}", brand.name),
        &[
            format!("You have been invited to {}.", brand.name),
            format!("To accept, open this link within {days} days and choose a password."),
        ],
        Some(link),
    )
}

/// A notice that an existing account was added to a project; `sign_in` is where to sign in.
pub fn added_to_project(to: &str, brand: &Brand, sign_in: &str) -> Mail {
    mail(
        to,
        format!("You now have access to {}", brand.name),
        &[
            format!("Your account was added to {}.", brand.name),
            "Sign in with your usual password here:".to_owned(),
        ],
        Some(sign_in),
    )
}

/// A link that proves the address belongs to the account (valid for `days`).
pub fn email_verification(to: &str, brand: &Brand, link: &str, days: i64) -> Mail {
    mail(
        to,
        format!("Verify your email for {}", brand.name),
        &[
            format!(
                "Please confirm that this address belongs to your {} account.",
                brand.name
            ),
            format!("Open this link within {days} days."),
        ],
        Some(link),
    )
}

/// A one-time sign-in code, valid for `minutes`.
pub fn sign_in_code(to: &str, brand: &Brand, code: &str, minutes: i64) -> Mail {
    mail(
        to,
        format!("{code} is your {} sign-in code", brand.name),
        &[
            format!("Your {} sign-in code is {code}.", brand.name),
            format!(
                "It is valid for {minutes} minutes and works once. \
                 If you did not try to sign in, change your password."
            ),
        ],
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_branded_and_escaped() {
        let brand = Brand::new("Clinic <A&B>");
        let m = password_reset("a@example.org", &brand, "https://x.example/set?a=1&b=2", 60);
        assert_eq!(m.subject, "Clinic <A&B> password reset");
        assert!(m.text.contains("https://x.example/set?a=1&b=2"));
        assert!(m.html.contains("Clinic &lt;A&amp;B&gt;"));
        assert!(
            m.html
                .contains("href=\"https://x.example/set?a=1&amp;b=2\"")
        );
        assert!(!m.text.to_lowercase().contains("medplum"));
        assert!(!format!("{m:?}").contains("x.example"));
        assert_eq!(Brand::new("  ").name, "your account");
        let c = sign_in_code("a@example.org", &brand, "123456", 10);
        assert!(c.subject.starts_with("123456 is your"));
    }
}
