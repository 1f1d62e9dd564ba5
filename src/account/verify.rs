//! Email verification: a mailed link proves the address belongs to the account.

use std::net::IpAddr;

use super::{AccountError, Accounts, LinkRefusal};
use crate::audit::AuditKind;
use crate::mail::template;
use crate::model::{RequestKind, UserId};
use crate::secret::BearerSecret;

impl Accounts<'_> {
    /// Issues a verification link for `user` (replacing any earlier one) and mails it;
    /// `redirect_uri` is where the browser goes after the link was used. Returns the link.
    pub async fn send_email_verification(
        &self,
        user: &UserId,
        redirect_uri: Option<&str>,
    ) -> Result<BearerSecret, AccountError> {
        let Some(user) = self.engine.directory().user(user).await? else {
            return Err(AccountError::UserNotFound);
        };
        let issued = self
            .issue(RequestKind::VerifyEmail, &user, redirect_uri, None)
            .await?;
        let link = self.link("verifyemail", &issued);
        let brand = self.brand(&user).await?;
        let days = RequestKind::VerifyEmail.lifetime().whole_days();
        let mail = template::email_verification(&user.email, &brand, link.expose(), days);
        self.engine.mailer().send(&mail).await?;
        Ok(link)
    }

    /// Uses a verification link: consumed atomically, the address marked verified. Returns
    /// the redirect the link was issued with, if any.
    pub async fn verify_email(
        &self,
        id: &str,
        secret: &str,
        remote: Option<IpAddr>,
    ) -> Result<Option<String>, AccountError> {
        self.precheck(
            id,
            secret,
            &[RequestKind::VerifyEmail],
            LinkRefusal::WrongKindForVerification,
        )
        .await?;
        let request = self.consume(id, secret).await?;
        let user = self
            .update_user(&request.user, |u| u.email_verified = true)
            .await?;
        self.audit(AuditKind::EmailVerified, &user.id, remote);
        Ok(request.redirect_uri)
    }
}
