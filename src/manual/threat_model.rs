//! # Threat model
//!
//! ## What is protected
//!
//! * **Accounts**: that only the person with the password (and the second factor, when the
//!   account has one) — or the identity provider the account's domain or client trusts — can
//!   act as the account.
//! * **Grants**: that a token grants no more than the person consented to, the client is
//!   allowed and the membership's access policy permits; that a grant ends when it is revoked
//!   or when its membership, client or user is deactivated.
//! * **Single-use secrets**: login handles, authorization codes, refresh tokens, client
//!   assertion `jti`s, TOTP steps, provider `state`s and hand-off references — each good once.
//! * **The directory's contents**: which emails exist, which projects someone belongs to.
//!
//! ## Who attacks, and from where
//!
//! | attacker | can | fhirgate's answer | checked by |
//! |---|---|---|---|
//! | a stranger on the network | send any request to any route, any number of times, from many addresses | typed refusals for malformed input, never a panic; every guess counted in the store before it is checked (per address, per account and address, per account with back-off that spares the owner); one answer and one argon2 computation for every failed password | `tests/it/malformed_input.rs`, `tests/it/attacks.rs`, `user_enumeration_one_answer_and_one_hash_for_every_failure` |
//! | someone who learns a login handle, a code or a `state` (a log line, a Referer, browser history) | replay it | secrets are 256 random bits stored as SHA-256; every stored step rotates the handle; codes live 60 s, are bound to client, redirect URI, PKCE and nonce, and are consumed by one atomic store operation — a replay revokes everything issued from the code | `a_leaked_login_handle_yields_no_second_code_or_cookie`, `authorization_code_replay_is_detected_and_expiry_is_sixty_seconds`, `tests/it/concurrency.rs` |
//! | a thief of a refresh token | use it after the owner did | rotation with reuse detection: a rotated-out token revokes the family | `refresh_rotation_reuse_of_an_old_token_revokes_the_family` |
//! | a malicious or careless client app | ask for more scope, replay a consent, swap tokens | scope only narrows (requested ∩ client ∩ policy); access tokens are `at+jwt` with our audience and verified with the key's own algorithm; account management needs a first-party token | `scope_escalation_through_consent_is_refused`, `token_confusion_id_and_refresh_tokens_are_not_access_tokens`, `a_third_party_apps_token_cannot_replace_the_second_factor_or_end_sessions` |
//! | a hostile identity provider response, or a mix-up between providers | forge or redirect a sign-in | server-side single-use `state`, `nonce`, server-held PKCE verifier; ID-token signature (asymmetric algorithms only), `iss`, `aud`/`azp`, times; RFC 9207 `iss`; verified email inside the configured domain; browser binding cookie | `tests/it/federation.rs` |
//! | a forger of login states in code | build a later stage without passing the earlier ones | stages are types that carry their data; a record becomes a stage only through `Engine::resume`, behind a sealed trait | `tests/compile-fail/ui/*`, `tests/it/property.rs` |
//!
//! ## What fhirgate trusts
//!
//! * **The host's transport.** TLS terminates in front of fhirgate; cookies are `Secure`, the
//!   issuer must be `https` except on loopback. fhirgate does not see whether a request came
//!   over TLS.
//! * **The trusted-proxy rule.** A client address comes from `X-Forwarded-For` only for the
//!   proxies `HttpConfig::trusted_proxies` names; per-address throttling is only as good as
//!   that rule.
//! * **The store.** A store that breaks the [storage contract](super::storage_contract) — an
//!   atomic operation that is not atomic across instances — breaks single use. The crate's
//!   stores pass the public conformance suite; a host's store should too.
//! * **The clock and the random source** handed to the engine. `SecureRandom` must be a
//!   CSPRNG; the clock must not run backwards by more than the configured leeway.
//! * **Configuration.** Identity providers, clients and access policies are data the
//!   administrator wrote; `Config::validate` refuses settings that would weaken a guarantee
//!   (code lifetime above 60 s, a verify cache above 15 minutes, an `http` issuer off
//!   loopback, …).
//!
//! ## What is out of scope
//!
//! Breached-password checks against external corpora, WebAuthn, account recovery and
//! self-service registration are not part of this crate (yet). A compromised host process
//! or database can mint anything: fhirgate stores secrets as hashes so that a *read* of the
//! database does not yield usable credentials, but it does not defend against a writer.
