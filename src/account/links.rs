//! Issuing and redeeming security requests: the secret, the stored hash, the link, the mail.

use super::{AccountError, Accounts, Issued, LinkRefusal};
use crate::mail::template::Brand;
use crate::model::{RequestId, RequestKind, SecurityRequest, User};
use crate::secret::{BearerSecret, SecretHash};
use crate::store::{RequestRedemption, redeem_request};

impl Accounts<'_> {
    /// A fresh request of `kind` for `user`: a random id, a 256-bit secret stored as its hash,
    /// the kind's lifetime. Stored at once, which makes it the only valid one of its kind for
    /// the user.
    /// `redirect_uri` and `login` are stored with it (a verification's redirect, a code's
    /// login).
    pub(crate) async fn issue(
        &self,
        kind: RequestKind,
        user: &User,
        redirect_uri: Option<&str>,
        login: Option<&crate::model::LoginId>,
    ) -> Result<Issued, AccountError> {
        let engine = self.engine;
        let secret = BearerSecret::generate(engine.random())?;
        let id = RequestId::generate(engine.random())?;
        let mut request =
            SecurityRequest::new(id, kind, user.id.clone(), secret.hash(), engine.now());
        request.redirect_uri = redirect_uri.map(str::to_owned);
        request.login = login.cloned();
        engine.request_store().create_request(&request).await?;
        Ok(Issued {
            request,
            link: secret,
        })
    }

    /// `<app>/<path>/<id>/<secret>`.
    pub(crate) fn link(&self, path: &str, issued: &Issued) -> BearerSecret {
        let config = self.engine.config();
        BearerSecret::from_presented(config.accounts.link(
            &config.oauth,
            &format!("{path}/{}/{}", issued.request.id, issued.link.expose()),
        ))
    }

    /// The brand of mail to `user`: their project's name, or the product name.
    pub(crate) async fn brand(&self, user: &User) -> Result<Brand, AccountError> {
        if let Some(project) = &user.project
            && let Some(project) = self.engine.directory().project(project).await?
        {
            return Ok(Brand::new(&project.name));
        }
        Ok(Brand::new(&self.engine.config().accounts.product_name))
    }

    /// Reads a presented link without consuming it: the refusal a consume would give, so
    /// that expensive work (hashing a new password) is not done for a dead link. A request
    /// of a kind not in `kinds` is refused with `wrong_kind` first (as Medplum checks the
    /// type first).
    pub(crate) async fn precheck(
        &self,
        id: &str,
        secret: &str,
        kinds: &[RequestKind],
        wrong_kind: LinkRefusal,
    ) -> Result<SecurityRequest, AccountError> {
        let store = self.engine.request_store();
        let Some(request) = store.request(&RequestId::new(id)).await? else {
            return Err(LinkRefusal::NotFound.into());
        };
        if !kinds.contains(&request.kind) {
            return Err(wrong_kind.into());
        }
        if request.used {
            return Err(LinkRefusal::Used.into());
        }
        let newest = store.latest_request(&request.user, request.kind).await?;
        if newest.is_some_and(|n| n.id != request.id) {
            return Err(LinkRefusal::Used.into());
        }
        if self.engine.now() >= request.expires_at {
            return Err(LinkRefusal::Expired.into());
        }
        if !request.secret.ct_eq(&SecretHash::of_presented(secret)) {
            return Err(LinkRefusal::IncorrectSecret.into());
        }
        Ok(request)
    }

    /// Consumes a link, atomically: exactly one of any number of concurrent presentations
    /// succeeds.
    pub(crate) async fn consume(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<SecurityRequest, AccountError> {
        let outcome = redeem_request(
            self.engine.request_store(),
            &RequestId::new(id),
            &SecretHash::of_presented(secret),
            self.engine.now(),
        )
        .await?;
        match outcome {
            RequestRedemption::Redeemed(request) => Ok(request),
            RequestRedemption::Used | RequestRedemption::Superseded => {
                Err(LinkRefusal::Used.into())
            }
            RequestRedemption::Expired => Err(LinkRefusal::Expired.into()),
            RequestRedemption::WrongSecret => Err(LinkRefusal::IncorrectSecret.into()),
            RequestRedemption::Unknown => Err(LinkRefusal::NotFound.into()),
        }
    }
}
