//! OAuth scopes with SMART App Launch 2.x semantics, and their intersection with access
//! policies.
//!
//! * [`ScopeSet::parse`] reads a space-separated scope string. SMART resource scopes follow
//!   `(patient|user|system)/(Type|*).<cruds>[?param=value&...]`; the v1 forms `.read`
//!   (`rs`), `.write` (`cud`) and `.*` (`cruds`) are accepted and rendered back in v1 form
//!   while they are granted intact. A malformed resource scope is an error; it is never
//!   dropped or re-interpreted (`.dus` is not `.uds`).
//! * [`ScopeSet::intersect`] and [`ScopeSet::covers`] compare grants letter by letter, type
//!   by type, and context by context: unlike Medplum, `c`, `u` and `d` are distinct, and
//!   `patient/`, `user/` and `system/` do not mix.
//! * [`ScopeSet::narrow_to_policy`] trims granted scopes to what an access policy allows, so
//!   the token response does not advertise more than the server will permit.
//! * [`effective_policy`] combines an access policy with the granted scopes into the
//!   [`EffectivePolicy`] that requests are checked against; `patient/` scopes confine the
//!   grant to the patient in context.

mod policy;
mod smart;
mod words;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::AccessPolicy;

pub use policy::{EffectivePolicy, GrantEntry, MissingPatientContext, effective_policy};
pub use smart::{
    Context, MAX_SCOPE_TEXT_LEN, MAX_SCOPES, Permissions, ResourceScope, ResourceType, Scope,
    ScopeError, ScopeErrorReason,
};

/// A de-duplicated set of scopes, kept in a fixed canonical order (simple scopes, then
/// resource scopes, then other scopes), so that its text form is deterministic.
///
/// Two spellings of the same resource scope (`patient/Observation.read` and
/// `patient/Observation.rs`) are one scope; the v1 spelling is kept.
///
/// Serialises as its space-separated text.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeSet {
    scopes: BTreeSet<Scope>,
}

impl ScopeSet {
    /// Parses a space-separated scope string (tokens separated by runs of ASCII
    /// whitespace). An empty or all-whitespace string is the empty set. The text may be at
    /// most [`MAX_SCOPE_TEXT_LEN`] bytes with at most [`MAX_SCOPES`] tokens; every token must
    /// be valid (see [`Scope::parse`]).
    pub fn parse(text: &str) -> Result<ScopeSet, ScopeError> {
        if text.len() > MAX_SCOPE_TEXT_LEN {
            return Err(ScopeError::new("", ScopeErrorReason::TooLong));
        }
        if text.split_ascii_whitespace().count() > MAX_SCOPES {
            return Err(ScopeError::new("", ScopeErrorReason::TooManyScopes));
        }
        let mut set = ScopeSet::empty();
        for token in text.split_ascii_whitespace() {
            set.insert(Scope::parse(token)?);
        }
        Ok(set)
    }

    /// The empty set.
    pub fn empty() -> ScopeSet {
        ScopeSet::default()
    }

    /// Adds a scope (a resource scope is normalised first; see [`ResourceScope`]).
    pub fn insert(&mut self, scope: Scope) {
        let scope = match scope {
            Scope::Resource(resource) => Scope::Resource(resource.normalized()),
            other => other,
        };
        if let Scope::Resource(resource) = &scope
            && let Some(twin) = resource.twin()
        {
            let twin = Scope::Resource(twin);
            if self.scopes.contains(&twin) {
                // The same grant in the other spelling: keep the v1 one.
                if resource.is_v1_form() {
                    self.scopes.remove(&twin);
                } else {
                    return;
                }
            }
        }
        self.scopes.insert(scope);
    }

    /// The scopes, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.iter()
    }

    /// The resource scopes, in canonical order.
    pub fn resource_scopes(&self) -> impl Iterator<Item = &ResourceScope> {
        self.scopes.iter().filter_map(Scope::as_resource)
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Whether `scope` is in the set (exact membership, not coverage; the v1 or v2 spelling
    /// of a resource scope does not matter).
    pub fn contains(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Resource(resource) => {
                let resource = resource.clone().normalized();
                let twin = resource.twin().map(Scope::Resource);
                self.scopes.contains(&Scope::Resource(resource))
                    || twin.is_some_and(|t| self.scopes.contains(&t))
            }
            other => self.scopes.contains(other),
        }
    }

    /// Whether `openid` is in the set.
    pub fn contains_openid(&self) -> bool {
        self.scopes.contains(&Scope::OpenId)
    }

    /// What both sets grant.
    ///
    /// Non-resource scopes are kept when present in both. Resource scopes are intersected
    /// pairwise within the same context: the narrower type (two different concrete types give
    /// nothing), the common permission letters (nothing if none), and the conjunction of both
    /// queries. The result is then made minimal: a scope within another result scope is
    /// dropped. The result is always covered by both inputs. The v1/v2 spelling of each
    /// resulting scope follows `self`, so call it as `requested.intersect(&allowed)`.
    pub fn intersect(&self, other: &ScopeSet) -> ScopeSet {
        let mut out = ScopeSet::empty();
        for scope in &self.scopes {
            match scope {
                Scope::Resource(x) => {
                    for y in other.resource_scopes() {
                        if let Some(both) = x.intersect(y) {
                            out.insert(Scope::Resource(both));
                        }
                    }
                }
                simple => {
                    if other.contains(simple) {
                        out.insert(simple.clone());
                    }
                }
            }
        }
        out.minimal()
    }

    /// Whether every scope of `other` is granted by this set. A non-resource scope must be
    /// present. A resource scope must have each of its permission letters granted by some
    /// resource scope of this set with the same context, type `*` or the same type, and a
    /// query that is absent or whose pairs all appear in the other scope's query.
    pub fn covers(&self, other: &ScopeSet) -> bool {
        other.scopes.iter().all(|scope| match scope {
            Scope::Resource(y) => {
                let granted = self
                    .resource_scopes()
                    .filter(|x| y.reach_within(x))
                    .fold(Permissions::NONE, |acc, x| acc.union(x.permissions));
                y.permissions.is_subset(granted)
            }
            simple => self.contains(simple),
        })
    }

    /// Trims the resource scopes to what `policy` allows (see [`AccessPolicy`]).
    ///
    /// A scope on type `T` keeps only the letters allowed by the policy entries for `T` or
    /// `*`. A `*` scope keeps a `*` scope with the letters of the policy's `*` entries (if
    /// any) and expands into one scope per resource type the policy names, for letters beyond
    /// those. Scopes left with no letter are dropped; non-resource scopes are kept. Entry
    /// criteria and compartments are not reflected in scopes; [`effective_policy`] applies
    /// them.
    pub fn narrow_to_policy(&self, policy: &AccessPolicy) -> ScopeSet {
        policy::narrow(self, policy)
    }

    /// Whether any `patient/` resource scope is present, so a patient must be in context
    /// (SMART: the token response then carries `patient`).
    pub fn needs_patient_context(&self) -> bool {
        self.resource_scopes()
            .any(|scope| scope.context == Context::Patient)
    }

    /// The set without its `patient/` resource scopes: what can be granted where no patient
    /// can be in context (a client acting for itself).
    pub fn without_patient_scopes(&self) -> ScopeSet {
        self.scopes
            .iter()
            .filter(|scope| !matches!(scope, Scope::Resource(r) if r.context == Context::Patient))
            .cloned()
            .collect()
    }

    /// Whether any resource scope is present.
    pub fn has_resource_scopes(&self) -> bool {
        self.resource_scopes().next().is_some()
    }

    /// Drops every resource scope that is strictly within another one.
    fn minimal(self) -> ScopeSet {
        let resources: Vec<&ResourceScope> = self.resource_scopes().collect();
        let mut out = ScopeSet::empty();
        for scope in &self.scopes {
            if let Scope::Resource(x) = scope {
                let dominated = resources.iter().any(|y| x.is_within(y) && !y.is_within(x));
                if dominated {
                    continue;
                }
            }
            out.insert(scope.clone());
        }
        out
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({:?})", self.to_string())
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ScopeSet::parse(text)
    }
}

impl TryFrom<String> for ScopeSet {
    type Error = ScopeError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        ScopeSet::parse(&text)
    }
}

impl From<ScopeSet> for String {
    fn from(set: ScopeSet) -> Self {
        set.to_string()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::empty();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::collections::btree_set::Iter<'a, Scope>;
    fn into_iter(self) -> Self::IntoIter {
        self.scopes.iter()
    }
}
