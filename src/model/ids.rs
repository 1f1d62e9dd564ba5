//! Identifiers as newtypes, so a user id can never be passed where a project id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::random::{RandomError, SecureRandom};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an existing identifier.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// A fresh random identifier (a version-4 UUID from the injected random source).
            pub fn generate(rng: &dyn SecureRandom) -> Result<Self, RandomError> {
                random_uuid(rng).map(Self)
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// Identifies a [`User`](crate::model::User).
    UserId
);
id_type!(
    /// Identifies a [`Project`](crate::model::Project).
    ProjectId
);
id_type!(
    /// Identifies a [`ProjectMembership`](crate::model::ProjectMembership).
    MembershipId
);
id_type!(
    /// Identifies a [`ClientApplication`](crate::model::ClientApplication) (its OAuth `client_id`).
    ClientId
);
id_type!(
    /// Identifies an [`AccessPolicy`](crate::model::AccessPolicy).
    AccessPolicyId
);
id_type!(
    /// Identifies a login (not secret: it appears in tokens, audit events and session lists;
    /// the secret that continues a login is its [`LoginHandle`](crate::login::LoginHandle)).
    LoginId
);
id_type!(
    /// Identifies a [`SmartLaunch`](crate::model::SmartLaunch) context.
    LaunchId
);

id_type!(
    /// Identifies a [`SecurityRequest`](crate::model::SecurityRequest) (not secret: it
    /// travels in the link beside the secret).
    RequestId
);

/// A random version-4 UUID in its canonical text form.
pub(crate) fn random_uuid(rng: &dyn SecureRandom) -> Result<String, RandomError> {
    let mut b = [0u8; 16];
    rng.fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..32).unwrap_or_default()
    ))
}

/// A FHIR reference of the form `Type/id`, such as `Practitioner/123`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference {
    text: String,
    slash: usize,
}

impl Reference {
    /// Parses `Type/id`. The type must start with an upper-case ASCII letter and be
    /// alphanumeric; the id must be 1–64 characters of `[A-Za-z0-9.-]` (FHIR's id rule).
    pub fn parse(text: &str) -> Result<Self, InvalidReference> {
        let (ty, id) = text.split_once('/').ok_or(InvalidReference)?;
        let type_ok = ty.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && ty.chars().all(|c| c.is_ascii_alphanumeric());
        let id_ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !type_ok || !id_ok {
            return Err(InvalidReference);
        }
        Ok(Self {
            text: text.to_owned(),
            slash: ty.len(),
        })
    }

    /// Builds `Type/id` from its parts.
    pub fn new(resource_type: &str, id: &str) -> Result<Self, InvalidReference> {
        Self::parse(&format!("{resource_type}/{id}"))
    }

    /// The resource type (`Practitioner`).
    pub fn resource_type(&self) -> &str {
        self.text.get(..self.slash).unwrap_or_default()
    }

    /// The id (`123`).
    pub fn id(&self) -> &str {
        self.text.get(self.slash + 1..).unwrap_or_default()
    }

    /// The whole reference (`Practitioner/123`).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({:?})", self.text)
    }
}

impl TryFrom<String> for Reference {
    type Error = InvalidReference;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Reference> for String {
    fn from(value: Reference) -> Self {
        value.text
    }
}

/// A reference that is not of the form `Type/id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a reference must have the form Type/id, such as Practitioner/123")]
pub struct InvalidReference;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn references_parse_and_split() {
        let r = Reference::parse("Practitioner/123").unwrap();
        assert_eq!(r.resource_type(), "Practitioner");
        assert_eq!(r.id(), "123");
        for bad in [
            "",
            "Practitioner",
            "/1",
            "practitioner/1",
            "Patient/",
            "Patient/a b",
            "Patient/1/2",
        ] {
            assert_eq!(Reference::parse(bad), Err(InvalidReference), "{bad}");
        }
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"Practitioner/123\"");
        assert!(serde_json::from_str::<Reference>("\"nope\"").is_err());
    }

    #[test]
    fn generated_ids_are_v4_uuids() {
        let id = UserId::generate(&OsRandom).unwrap();
        let s = id.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(s.as_bytes()[14], b'4');
        assert_ne!(id, UserId::generate(&OsRandom).unwrap());
    }
}
