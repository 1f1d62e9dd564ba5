//! The SMART App Launch scope grammar: single scopes, resource scopes, the permission bitset,
//! and parse errors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::Interaction;

/// The longest scope text [`ScopeSet::parse`](super::ScopeSet::parse) accepts, in bytes.
pub const MAX_SCOPE_TEXT_LEN: usize = 4096;

/// The most scope tokens [`ScopeSet::parse`](super::ScopeSet::parse) accepts (counted before
/// duplicates are removed).
pub const MAX_SCOPES: usize = 100;

/// SMART v2 permission letters in their required order, with their bits.
const LETTERS: [(char, u8); 5] = [('c', 1), ('r', 2), ('u', 4), ('d', 8), ('s', 16)];

/// A set of SMART v2 permissions: any combination of `c` (create), `r` (read), `u` (update),
/// `d` (delete) and `s` (search).
///
/// Every letter is distinct: write does not imply read, and create does not imply update.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// No permission.
    pub const NONE: Self = Self(0);
    /// `c`: create.
    pub const CREATE: Self = Self(1);
    /// `r`: read, version read and history.
    pub const READ: Self = Self(2);
    /// `u`: update and patch.
    pub const UPDATE: Self = Self(4);
    /// `d`: delete.
    pub const DELETE: Self = Self(8);
    /// `s`: search.
    pub const SEARCH: Self = Self(16);
    /// `cruds`: everything (SMART v1 `*`).
    pub const ALL: Self = Self(31);
    /// `rs`: what SMART v1 `read` means.
    pub const V1_READ: Self = Self(2 | 16);
    /// `cud`: what SMART v1 `write` means.
    pub const V1_WRITE: Self = Self(1 | 4 | 8);

    /// Parses SMART v2 letters: a subsequence of `cruds` in that order, each letter at most
    /// once (`rs`, `cud`, `cruds`). The empty string gives [`Permissions::NONE`]. Anything
    /// else (`dus`, `rr`, `x`) is `None`: letters are never re-ordered or re-interpreted.
    pub fn from_letters(letters: &str) -> Option<Self> {
        let mut bits = 0u8;
        let mut next = 0usize;
        for ch in letters.chars() {
            let offset = LETTERS.iter().skip(next).position(|(l, _)| *l == ch)?;
            let position = next + offset;
            let (_, bit) = LETTERS.get(position)?;
            bits |= bit;
            next = position + 1;
        }
        Some(Self(bits))
    }

    /// The permission for one letter of `cruds`.
    pub fn from_letter(letter: char) -> Option<Self> {
        LETTERS
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|(_, bit)| Self(*bit))
    }

    /// The permission letter an interaction falls under (see [`Interaction::smart_letter`]).
    pub fn from_interaction(interaction: Interaction) -> Self {
        Self::from_letter(interaction.smart_letter()).unwrap_or(Self::NONE)
    }

    /// The union of the letters of some interactions.
    pub fn from_interactions<'a>(interactions: impl IntoIterator<Item = &'a Interaction>) -> Self {
        interactions
            .into_iter()
            .fold(Self::NONE, |acc, i| acc.union(Self::from_interaction(*i)))
    }

    /// Whether the letter of `interaction` is in the set.
    pub fn contains(self, interaction: Interaction) -> bool {
        let wanted = Self::from_interaction(interaction);
        !wanted.is_empty() && wanted.is_subset(self)
    }

    /// Whether `letter` (one of `cruds`) is in the set.
    pub fn contains_letter(self, letter: char) -> bool {
        Self::from_letter(letter).is_some_and(|p| p.is_subset(self))
    }

    /// The letters, in the order `cruds` (empty for [`Permissions::NONE`]).
    pub fn letters(self) -> String {
        LETTERS
            .iter()
            .filter(|(_, bit)| self.0 & bit != 0)
            .map(|(l, _)| *l)
            .collect()
    }

    /// Letters in both sets.
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Letters in either set.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every letter of `self` is also in `other`.
    pub fn is_subset(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether no letter is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The SMART v1 spelling of this set, if it has one (`read`, `write` or `*`).
    pub fn v1_name(self) -> Option<&'static str> {
        match self {
            Self::V1_READ => Some("read"),
            Self::V1_WRITE => Some("write"),
            Self::ALL => Some("*"),
            _ => None,
        }
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.letters())
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({:?})", self.letters())
    }
}

/// Whose data a resource scope reaches: the `patient/`, `user/` or `system/` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// `patient/`: data in the compartment of the patient in context.
    Patient,
    /// `user/`: data the signed-in user may reach.
    User,
    /// `system/`: data a backend client may reach, with no user.
    System,
}

impl Context {
    /// The prefix word (`patient`, `user`, `system`).
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource type of a resource scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// `*`: every resource type, current and future.
    Any,
    /// One FHIR resource type, such as `Observation` (`[A-Z][A-Za-z]*`).
    Named(String),
}

impl ResourceType {
    /// `*` for [`ResourceType::Any`], otherwise the type name.
    pub fn as_str(&self) -> &str {
        match self {
            ResourceType::Any => "*",
            ResourceType::Named(name) => name,
        }
    }

    /// Whether this type reaches resources of `resource_type` (`*` reaches every type).
    pub fn matches(&self, resource_type: &str) -> bool {
        match self {
            ResourceType::Any => true,
            ResourceType::Named(name) => name == resource_type,
        }
    }

    /// Whether every type this one reaches is also reached by `other`.
    pub fn is_within(&self, other: &ResourceType) -> bool {
        match (self, other) {
            (_, ResourceType::Any) => true,
            (ResourceType::Any, ResourceType::Named(_)) => false,
            (ResourceType::Named(a), ResourceType::Named(b)) => a == b,
        }
    }

    /// The types both reach: the concrete one when the other is `*`, `None` for two
    /// different concrete types.
    pub fn intersect(&self, other: &ResourceType) -> Option<ResourceType> {
        if self.is_within(other) {
            Some(self.clone())
        } else if other.is_within(self) {
            Some(other.clone())
        } else {
            None
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `name` has the shape of a FHIR resource type name: `[A-Z][A-Za-z]*`.
pub(crate) fn is_resource_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphabetic())
}

/// A SMART resource scope such as `patient/Observation.rs?category=laboratory`.
///
/// The fields are public for reading; build values with [`ResourceScope::new`],
/// [`ResourceScope::with_query`] and [`ResourceScope::parse`], which keep the query
/// normalised. Whether the scope was written in SMART v1 form (`.read`, `.write`, `.*`) is
/// remembered: it renders in v1 form while its permissions are still exactly a v1 set, and in
/// v2 letters otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceScope {
    /// `patient/`, `user/` or `system/`.
    pub context: Context,
    /// The resource type, or `*`.
    pub resource_type: ResourceType,
    /// The permitted interactions.
    pub permissions: Permissions,
    /// Search parameters restricting the scope, normalised: `param=value` pairs sorted,
    /// de-duplicated and joined by `&` (without the leading `?`).
    pub query: Option<String>,
    /// Written in SMART v1 form.
    v1: bool,
}

impl ResourceScope {
    /// A v2 scope with no query.
    pub fn new(context: Context, resource_type: ResourceType, permissions: Permissions) -> Self {
        Self {
            context,
            resource_type,
            permissions,
            query: None,
            v1: false,
        }
    }

    /// Parses one resource scope token (`user/Observation.cruds`, `patient/*.read`).
    pub fn parse(token: &str) -> Result<Self, ScopeError> {
        match Scope::parse(token)? {
            Scope::Resource(scope) => Ok(scope),
            _ => Err(ScopeError::new(token, ScopeErrorReason::NotResourceScope)),
        }
    }

    /// Sets the query (`param=value(&param=value)*`, without the leading `?`), normalised.
    pub fn with_query(mut self, query: &str) -> Result<Self, ScopeError> {
        match normalize_query(query) {
            Some(normalized) => {
                self.query = Some(normalized);
                Ok(self)
            }
            None => Err(ScopeError::new(
                &format!("{self}?{query}"),
                ScopeErrorReason::InvalidQuery,
            )),
        }
    }

    /// Marks the scope as written in SMART v1 form; it renders as `.read`, `.write` or `.*`
    /// while its permissions are exactly one of those sets.
    pub fn in_v1_form(mut self) -> Self {
        self.v1 = true;
        self.normalized()
    }

    /// Whether the scope renders in SMART v1 form.
    pub fn is_v1_form(&self) -> bool {
        self.v1 && self.permissions.v1_name().is_some()
    }

    /// Whether everything this scope grants is also granted by `other`: same context,
    /// `other`'s type is `*` or the same, our permissions are a subset of `other`'s, and
    /// every `param=value` pair of `other`'s query is also in ours.
    pub fn is_within(&self, other: &ResourceScope) -> bool {
        self.reach_within(other) && self.permissions.is_subset(other.permissions)
    }

    /// Whether every resource this scope reaches is also reached by `other`, whatever the
    /// permissions: same context, `other`'s type is `*` or the same, and `other`'s query
    /// pairs all appear in ours.
    pub(crate) fn reach_within(&self, other: &ResourceScope) -> bool {
        self.context == other.context
            && self.resource_type.is_within(&other.resource_type)
            && query_within(self.query.as_deref(), other.query.as_deref())
    }

    /// What both scopes grant, if anything: same context required, the narrower type, the
    /// common permissions, and the conjunction of both queries. The v1/v2 spelling follows
    /// `self`.
    pub fn intersect(&self, other: &ResourceScope) -> Option<ResourceScope> {
        if self.context != other.context {
            return None;
        }
        let resource_type = self.resource_type.intersect(&other.resource_type)?;
        let permissions = self.permissions.intersection(other.permissions);
        if permissions.is_empty() {
            return None;
        }
        let scope = ResourceScope {
            context: self.context,
            resource_type,
            permissions,
            query: combine_queries(self.query.as_deref(), other.query.as_deref()),
            v1: self.v1,
        };
        Some(scope.normalized())
    }

    /// The same scope with other permissions (keeping the v1 spelling only if it still
    /// applies).
    pub(crate) fn with_permissions(&self, permissions: Permissions) -> Self {
        Self {
            permissions,
            ..self.clone()
        }
        .normalized()
    }

    /// The same scope with another resource type.
    pub(crate) fn with_type(&self, resource_type: ResourceType) -> Self {
        Self {
            resource_type,
            ..self.clone()
        }
    }

    /// Canonical form: the v1 flag is kept only when it affects rendering, and a valid query
    /// is re-normalised (the fields are public, so a caller may have set them directly).
    pub(crate) fn normalized(mut self) -> Self {
        if self.permissions.v1_name().is_none() {
            self.v1 = false;
        }
        if let Some(query) = &self.query
            && let Some(normalized) = normalize_query(query)
        {
            self.query = Some(normalized);
        }
        self
    }

    /// The same scope in the other spelling (v1 ↔ v2), if the permissions have a v1 form.
    pub(crate) fn twin(&self) -> Option<Self> {
        self.permissions.v1_name().map(|_| Self {
            v1: !self.v1,
            ..self.clone()
        })
    }
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}.", self.context, self.resource_type)?;
        match self.permissions.v1_name() {
            Some(name) if self.v1 => f.write_str(name)?,
            _ => f.write_str(&self.permissions.letters())?,
        }
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

/// Normalises a scope query: non-empty `param=value` pairs joined by `&`, sorted and
/// de-duplicated. `None` if the text is not such a query.
pub(crate) fn normalize_query(query: &str) -> Option<String> {
    if query.is_empty() {
        return None;
    }
    let mut pairs: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        let (param, value) = pair.split_once('=')?;
        let param_ok = !param.is_empty()
            && param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        let value_ok = !value.is_empty() && value.bytes().all(is_scope_byte);
        if !param_ok || !value_ok {
            return None;
        }
        pairs.push(pair);
    }
    pairs.sort_unstable();
    pairs.dedup();
    Some(pairs.join("&"))
}

/// Whether every pair of `outer` is also in `inner` (no `outer` query restricts nothing).
fn query_within(inner: Option<&str>, outer: Option<&str>) -> bool {
    match outer {
        None => true,
        Some(outer) => {
            let inner: Vec<&str> = inner.map(|q| q.split('&').collect()).unwrap_or_default();
            outer.split('&').all(|pair| inner.contains(&pair))
        }
    }
}

/// The conjunction of two queries: all pairs of both, normalised.
fn combine_queries(a: Option<&str>, b: Option<&str>) -> Option<String> {
    let mut pairs: Vec<&str> = a.into_iter().chain(b).flat_map(|q| q.split('&')).collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_unstable();
    pairs.dedup();
    Some(pairs.join("&"))
}

/// One scope token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `openid`.
    OpenId,
    /// `fhirUser`.
    FhirUser,
    /// `profile`.
    Profile,
    /// `email`.
    Email,
    /// `offline_access`.
    OfflineAccess,
    /// `online_access`.
    OnlineAccess,
    /// `launch` (EHR launch).
    Launch,
    /// `launch/patient` (standalone launch: ask for a patient).
    LaunchPatient,
    /// `launch/encounter` (standalone launch: ask for an encounter).
    LaunchEncounter,
    /// A SMART resource scope (`patient/`, `user/`, `system/`).
    Resource(ResourceScope),
    /// Any other valid scope token, matched exactly (such as `fhircast/...` or `phone`).
    Other(String),
}

impl Scope {
    /// Parses one token. Tokens starting with `patient/`, `user/` or `system/` must be valid
    /// resource scopes; any other RFC 6749 scope token that is not a known scope is
    /// [`Scope::Other`].
    pub fn parse(token: &str) -> Result<Self, ScopeError> {
        if token.is_empty() {
            return Err(ScopeError::new(token, ScopeErrorReason::Empty));
        }
        if !token.bytes().all(is_scope_byte) {
            return Err(ScopeError::new(token, ScopeErrorReason::InvalidCharacter));
        }
        let simple = match token {
            "openid" => Some(Scope::OpenId),
            "fhirUser" => Some(Scope::FhirUser),
            "profile" => Some(Scope::Profile),
            "email" => Some(Scope::Email),
            "offline_access" => Some(Scope::OfflineAccess),
            "online_access" => Some(Scope::OnlineAccess),
            "launch" => Some(Scope::Launch),
            "launch/patient" => Some(Scope::LaunchPatient),
            "launch/encounter" => Some(Scope::LaunchEncounter),
            _ => None,
        };
        if let Some(scope) = simple {
            return Ok(scope);
        }
        let contexts = [
            ("patient/", Context::Patient),
            ("user/", Context::User),
            ("system/", Context::System),
        ];
        for (prefix, context) in contexts {
            if let Some(rest) = token.strip_prefix(prefix) {
                return parse_resource(token, context, rest).map(Scope::Resource);
            }
        }
        Ok(Scope::Other(token.to_owned()))
    }

    /// The resource scope, if this is one.
    pub fn as_resource(&self) -> Option<&ResourceScope> {
        match self {
            Scope::Resource(scope) => Some(scope),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Scope::OpenId => "openid",
            Scope::FhirUser => "fhirUser",
            Scope::Profile => "profile",
            Scope::Email => "email",
            Scope::OfflineAccess => "offline_access",
            Scope::OnlineAccess => "online_access",
            Scope::Launch => "launch",
            Scope::LaunchPatient => "launch/patient",
            Scope::LaunchEncounter => "launch/encounter",
            Scope::Resource(scope) => return scope.fmt(f),
            Scope::Other(text) => text,
        };
        f.write_str(text)
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::parse(text)
    }
}

impl From<ResourceScope> for Scope {
    fn from(scope: ResourceScope) -> Self {
        Scope::Resource(scope)
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// RFC 6749 scope-token characters: `%x21 / %x23-5B / %x5D-7E`.
fn is_scope_byte(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

fn parse_resource(token: &str, context: Context, rest: &str) -> Result<ResourceScope, ScopeError> {
    let fail = |reason| ScopeError::new(token, reason);
    let (body, query) = match rest.split_once('?') {
        Some((body, query)) => (body, Some(query)),
        None => (rest, None),
    };
    let (type_text, permission_text) = body
        .split_once('.')
        .ok_or_else(|| fail(ScopeErrorReason::MissingPermissions))?;
    let resource_type = if type_text == "*" {
        ResourceType::Any
    } else if is_resource_type_name(type_text) {
        ResourceType::Named(type_text.to_owned())
    } else {
        return Err(fail(ScopeErrorReason::InvalidResourceType));
    };
    let (permissions, v1) = match permission_text {
        "read" => (Permissions::V1_READ, true),
        "write" => (Permissions::V1_WRITE, true),
        "*" => (Permissions::ALL, true),
        "" => return Err(fail(ScopeErrorReason::EmptyPermissions)),
        letters => (
            Permissions::from_letters(letters)
                .ok_or_else(|| fail(ScopeErrorReason::InvalidPermissions))?,
            false,
        ),
    };
    let query = match query {
        None => None,
        Some(query) => {
            Some(normalize_query(query).ok_or_else(|| fail(ScopeErrorReason::InvalidQuery))?)
        }
    };
    Ok(ResourceScope {
        context,
        resource_type,
        permissions,
        query,
        v1,
    })
}

/// A scope string or token that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid scope{}: {reason}", quoted(.token))]
pub struct ScopeError {
    /// The offending token (empty when the whole text is refused, such as for its length).
    pub token: String,
    /// Why it was refused.
    pub reason: ScopeErrorReason,
}

impl ScopeError {
    pub(crate) fn new(token: &str, reason: ScopeErrorReason) -> Self {
        Self {
            token: token.to_owned(),
            reason,
        }
    }
}

fn quoted(token: &str) -> String {
    if token.is_empty() {
        String::new()
    } else {
        format!(" {token:?}")
    }
}

/// Why a scope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeErrorReason {
    /// The whole scope text is longer than [`MAX_SCOPE_TEXT_LEN`].
    #[error("the scope text is longer than {MAX_SCOPE_TEXT_LEN} bytes")]
    TooLong,
    /// The scope text has more than [`MAX_SCOPES`] tokens.
    #[error("more than {MAX_SCOPES} scopes")]
    TooManyScopes,
    /// An empty token (only from [`Scope::parse`]; [`ScopeSet::parse`](super::ScopeSet::parse)
    /// splits on whitespace runs).
    #[error("a scope must not be empty")]
    Empty,
    /// A character outside RFC 6749's scope-token set (`%x21 / %x23-5B / %x5D-7E`).
    #[error("contains a character that is not allowed in a scope")]
    InvalidCharacter,
    /// The resource type is neither `*` nor a FHIR resource type name.
    #[error("the resource type must be a FHIR resource type name or \"*\"")]
    InvalidResourceType,
    /// No `.` and permissions after the resource type.
    #[error("expected \".\" and permissions after the resource type")]
    MissingPermissions,
    /// Nothing after the `.`.
    #[error("permissions must not be empty")]
    EmptyPermissions,
    /// Permissions that are not `read`, `write`, `*` or an in-order subset of `cruds`.
    #[error("permissions must be a subset of \"cruds\" in that order")]
    InvalidPermissions,
    /// A query that is not `param=value` pairs joined by `&`.
    #[error("the query must be param=value pairs joined by \"&\"")]
    InvalidQuery,
    /// A valid scope that is not a resource scope, where one was required.
    #[error("not a patient/, user/ or system/ resource scope")]
    NotResourceScope,
}
