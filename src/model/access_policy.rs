//! Access policies: what a membership may do, and from where.
//!
//! Only the part that matters to authentication and token scoping lives here: resource
//! entries (type, interactions, read-only, criteria, compartment) and IP access rules. IP rules
//! match by CIDR for IPv4 and IPv6 — not by string prefix as Medplum does, where `10.0.0.1`
//! also matched `10.0.0.12`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{AccessPolicyId, Reference};

/// A named set of permissions attached to memberships.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// Identifier.
    pub id: AccessPolicyId,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// A compartment every entry is restricted to, unless the entry names its own.
    #[serde(default)]
    pub compartment: Option<Reference>,
    /// Resource permissions. An empty list permits nothing.
    #[serde(default)]
    pub resources: Vec<ResourcePolicy>,
    /// Source-address rules, evaluated in order when a membership is chosen.
    #[serde(default)]
    pub ip_rules: Vec<IpAccessRule>,
}

impl AccessPolicy {
    /// An empty policy (permits nothing, no IP rules).
    pub fn new(id: AccessPolicyId) -> Self {
        Self {
            id,
            name: None,
            compartment: None,
            resources: Vec::new(),
            ip_rules: Vec::new(),
        }
    }

    /// The policy used when a membership has none: every resource type, every interaction
    /// (Medplum's legacy default).
    pub fn full_access(id: AccessPolicyId) -> Self {
        Self {
            id,
            name: Some("full access".to_owned()),
            compartment: None,
            resources: vec![ResourcePolicy::any("*")],
            ip_rules: Vec::new(),
        }
    }

    /// Whether the policy allows only read interactions (read, vread, history, search) on
    /// every resource: a member acting under it changes nothing.
    pub fn is_read_only(&self) -> bool {
        self.resources.iter().all(|entry| {
            entry
                .allowed_interactions()
                .iter()
                .all(|i| Interaction::READS.contains(i))
        })
    }

    /// Evaluates the IP rules in order for a client address: the first matching `allow` rule
    /// passes, a matching `block` rule refuses, and an address no rule matches passes. An
    /// unknown address is matched only by `*` rules.
    pub fn check_ip(&self, address: Option<IpAddr>) -> Result<(), IpNotAllowed> {
        for rule in &self.ip_rules {
            if rule.value.matches(address) {
                return match rule.action {
                    IpAction::Allow => Ok(()),
                    IpAction::Block => Err(IpNotAllowed),
                };
            }
        }
        Ok(())
    }
}

/// The client address is refused by an access policy's IP rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("IP address not allowed")]
pub struct IpNotAllowed;

/// Permissions on one resource type (or `*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcePolicy {
    /// A FHIR resource type, or `*` for every type.
    pub resource_type: String,
    /// Compartment this entry is restricted to.
    #[serde(default)]
    pub compartment: Option<Reference>,
    /// FHIR search criteria restricting the entry, such as `Observation?subject=Patient/1`.
    #[serde(default)]
    pub criteria: Option<String>,
    /// Only read interactions (read, vread, history, search).
    #[serde(default)]
    pub readonly: bool,
    /// Allowed interactions; empty means all (or all read interactions when `readonly`).
    #[serde(default)]
    pub interactions: Vec<Interaction>,
}

impl ResourcePolicy {
    /// Every interaction on `resource_type`.
    pub fn any(resource_type: &str) -> Self {
        Self {
            resource_type: resource_type.to_owned(),
            compartment: None,
            criteria: None,
            readonly: false,
            interactions: Vec::new(),
        }
    }

    /// The interactions this entry really allows, with `readonly` and the empty-list default
    /// applied.
    pub fn allowed_interactions(&self) -> Vec<Interaction> {
        let all: &[Interaction] = if self.readonly {
            &Interaction::READS
        } else {
            &Interaction::ALL
        };
        if self.interactions.is_empty() {
            all.to_vec()
        } else {
            self.interactions
                .iter()
                .copied()
                .filter(|i| all.contains(i))
                .collect()
        }
    }
}

/// A FHIR interaction an access policy can allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interaction {
    /// Create (SMART `c`).
    Create,
    /// Read (SMART `r`).
    Read,
    /// Version read (SMART `r`).
    Vread,
    /// History (SMART `r`).
    History,
    /// Update or patch (SMART `u`).
    Update,
    /// Delete (SMART `d`).
    Delete,
    /// Search (SMART `s`).
    Search,
}

impl Interaction {
    /// Every interaction.
    pub const ALL: [Interaction; 7] = [
        Interaction::Create,
        Interaction::Read,
        Interaction::Vread,
        Interaction::History,
        Interaction::Update,
        Interaction::Delete,
        Interaction::Search,
    ];
    /// The read-only interactions.
    pub const READS: [Interaction; 4] = [
        Interaction::Read,
        Interaction::Vread,
        Interaction::History,
        Interaction::Search,
    ];

    /// The SMART v2 permission letter this interaction falls under.
    pub fn smart_letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read | Interaction::Vread | Interaction::History => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }
}

/// One source-address rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAccessRule {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The addresses it matches.
    pub value: IpMatch,
    /// What happens on a match.
    pub action: IpAction,
}

/// What a matching IP rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpAction {
    /// Let the login through.
    Allow,
    /// Refuse it ("IP address not allowed").
    Block,
}

/// The addresses an IP rule matches: `*`, or a CIDR block such as `10.0.0.0/8` or
/// `2001:db8::/32` (a bare address means a single host).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IpMatch {
    /// Every address, including an unknown one.
    Any,
    /// A CIDR block.
    Cidr {
        /// The network address (host bits zero).
        network: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
}

impl IpMatch {
    /// Whether `address` falls in this rule. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`)
    /// are treated as the IPv4 address they carry.
    pub fn matches(&self, address: Option<IpAddr>) -> bool {
        match (self, address) {
            (IpMatch::Any, _) => true,
            (IpMatch::Cidr { .. }, None) => false,
            (IpMatch::Cidr { network, prefix }, Some(addr)) => match (*network, canonical(addr)) {
                (IpAddr::V4(n), IpAddr::V4(a)) => mask_v4(u32::from(a), *prefix) == u32::from(n),
                (IpAddr::V6(n), IpAddr::V6(a)) => mask_v6(u128::from(a), *prefix) == u128::from(n),
                _ => false,
            },
        }
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn mask_v4(value: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        value & (u32::MAX << (32 - u32::from(prefix.min(32))))
    }
}

fn mask_v6(value: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        value & (u128::MAX << (128 - u32::from(prefix.min(128))))
    }
}

impl FromStr for IpMatch {
    type Err = InvalidIpRule;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "*" {
            return Ok(IpMatch::Any);
        }
        let invalid = || InvalidIpRule(text.to_owned());
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = canonical(IpAddr::from_str(addr_text).map_err(|_| invalid())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| invalid())?
            }
            Some(_) => return Err(invalid()),
        };
        if prefix > max {
            return Err(invalid());
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask_v4(u32::from(a), prefix).into()),
            IpAddr::V6(a) => IpAddr::V6(mask_v6(u128::from(a), prefix).into()),
        };
        Ok(IpMatch::Cidr { network, prefix })
    }
}

impl fmt::Display for IpMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpMatch::Any => f.write_str("*"),
            IpMatch::Cidr { network, prefix } => write!(f, "{network}/{prefix}"),
        }
    }
}

impl fmt::Debug for IpMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpMatch({self})")
    }
}

impl TryFrom<String> for IpMatch {
    type Error = InvalidIpRule;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<IpMatch> for String {
    fn from(value: IpMatch) -> Self {
        value.to_string()
    }
}

/// An IP rule value that is neither `*` nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP rule {0:?}: expected *, an address, or CIDR such as 10.0.0.0/8")]
pub struct InvalidIpRule(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn policy(rules: &[(&str, IpAction)]) -> AccessPolicy {
        AccessPolicy {
            ip_rules: rules
                .iter()
                .map(|(v, a)| IpAccessRule {
                    name: None,
                    value: v.parse().unwrap(),
                    action: *a,
                })
                .collect(),
            ..AccessPolicy::new(AccessPolicyId::new("p"))
        }
    }

    #[test]
    fn string_prefix_is_not_a_match() {
        // Medplum's prefix matching let 10.0.0.1 match 10.0.0.12.
        let m: IpMatch = "10.0.0.1".parse().unwrap();
        assert!(m.matches(ip("10.0.0.1")));
        assert!(!m.matches(ip("10.0.0.12")));
    }

    #[test]
    fn cidr_blocks_v4_and_v6() {
        let m: IpMatch = "10.1.0.0/16".parse().unwrap();
        assert!(m.matches(ip("10.1.255.3")));
        assert!(!m.matches(ip("10.2.0.1")));
        assert!(m.matches(ip("::ffff:10.1.2.3")));
        let m: IpMatch = "2001:db8::/32".parse().unwrap();
        assert!(m.matches(ip("2001:db8:1::5")));
        assert!(!m.matches(ip("2001:db9::1")));
        assert!(!m.matches(ip("10.1.2.3")));
        let all4: IpMatch = "0.0.0.0/0".parse().unwrap();
        assert!(all4.matches(ip("192.0.2.1")));
        assert!(!all4.matches(ip("::1")));
        assert!(!all4.matches(None));
        assert!(IpMatch::Any.matches(None));
        // host bits are cleared
        assert_eq!(
            "10.1.2.3/8".parse::<IpMatch>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "ten",
            "10.0.0.0/8/9",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<IpMatch>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<IpMatch>("\"10.0.0.0/40\"").is_err());
    }

    #[test]
    fn rules_are_evaluated_in_order() {
        let p = policy(&[("10.0.0.0/8", IpAction::Allow), ("*", IpAction::Block)]);
        assert_eq!(p.check_ip(ip("10.9.9.9")), Ok(()));
        assert_eq!(p.check_ip(ip("192.0.2.1")), Err(IpNotAllowed));
        assert_eq!(p.check_ip(None), Err(IpNotAllowed));
        let p = policy(&[("192.0.2.0/24", IpAction::Block)]);
        assert_eq!(p.check_ip(ip("192.0.2.7")), Err(IpNotAllowed));
        assert_eq!(p.check_ip(ip("192.0.3.7")), Ok(()));
        assert_eq!(p.check_ip(None), Ok(()));
        assert_eq!(IpNotAllowed.to_string(), "IP address not allowed");
    }

    #[test]
    fn readonly_limits_interactions() {
        let mut r = ResourcePolicy::any("Observation");
        assert_eq!(r.allowed_interactions().len(), 7);
        r.readonly = true;
        assert_eq!(r.allowed_interactions(), Interaction::READS.to_vec());
        r.interactions = vec![Interaction::Read, Interaction::Delete];
        assert_eq!(r.allowed_interactions(), vec![Interaction::Read]);
    }

    #[test]
    fn read_only_means_no_entry_allows_a_change() {
        let mut p = AccessPolicy::full_access(AccessPolicyId::new("p"));
        assert!(!p.is_read_only());
        p.resources[0].readonly = true;
        assert!(p.is_read_only());
        let mut write = ResourcePolicy::any("Observation");
        write.interactions = vec![Interaction::Search, Interaction::Update];
        p.resources.push(write);
        assert!(!p.is_read_only());
        p.resources[1].interactions = vec![Interaction::Search, Interaction::Read];
        assert!(p.is_read_only());
        // An empty policy permits nothing, so it changes nothing either.
        assert!(AccessPolicy::new(AccessPolicyId::new("none")).is_read_only());
    }
}
