//! Access policies meet SMART scopes: narrowing granted scopes to a policy, and the effective
//! policy requests are checked against.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{AccessPolicy, Interaction, Reference, ResourcePolicy};

use super::smart::is_resource_type_name;
use super::{Context, Permissions, ResourceType, Scope, ScopeSet};

/// A `patient/` scope was granted but no patient is in context (SMART: a patient SHALL be
/// established when a `patient/` scope is granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Missing patient context")]
pub struct MissingPatientContext;

/// One permission of an [`EffectivePolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantEntry {
    /// A FHIR resource type, or `*` for every type.
    pub resource_type: String,
    /// The permitted letters.
    pub permissions: Permissions,
    /// FHIR search criteria (`Type?param=value&...`) a resource must all match. The access
    /// policy entry's own criteria come first, then the granting scope's query.
    pub criteria: Vec<String>,
    /// The compartment the grant is confined to: the patient in context for `patient/`
    /// scopes, otherwise the policy entry's (or the policy's) compartment.
    pub compartment: Option<Reference>,
}

/// An access policy as far as the granted scopes allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectivePolicy {
    entries: Vec<GrantEntry>,
    /// For each entry, the exact interactions the policy entry allowed within its letters
    /// (a policy may allow `read` without `history`, which share the letter `r`).
    interactions: Vec<BTreeSet<Interaction>>,
}

impl EffectivePolicy {
    /// The grants, in policy-entry order.
    pub fn entries(&self) -> &[GrantEntry] {
        &self.entries
    }

    /// Whether some grant on `resource_type` (or `*`) permits `interaction`: its letter is
    /// granted and the policy entry allows that exact interaction.
    ///
    /// This does not look at criteria or compartments: the caller must still confine the
    /// request to the matching entries' [`GrantEntry::criteria`] and
    /// [`GrantEntry::compartment`].
    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.entries
            .iter()
            .zip(&self.interactions)
            .any(|(entry, exact)| {
                (entry.resource_type == "*" || entry.resource_type == resource_type)
                    && entry.permissions.contains(interaction)
                    && exact.contains(&interaction)
            })
    }

    fn push(&mut self, entry: GrantEntry, exact: BTreeSet<Interaction>, merge: bool) {
        if merge {
            let existing = self
                .entries
                .iter_mut()
                .zip(self.interactions.iter_mut())
                .find(|(e, _)| {
                    e.resource_type == entry.resource_type
                        && e.criteria == entry.criteria
                        && e.compartment == entry.compartment
                });
            if let Some((e, interactions)) = existing {
                e.permissions = e.permissions.union(entry.permissions);
                interactions.extend(exact);
                return;
            }
        }
        self.entries.push(entry);
        self.interactions.push(exact);
    }
}

/// Combines an access policy with granted scopes.
///
/// With no resource scope nothing is allowed: scopes are what the user consented to, so
/// `openid fhirUser` (or a refresh narrowed to `openid`) reaches no resource, whatever the
/// policy would allow (Medplum hands such a login its whole policy). Otherwise each policy
/// entry is kept only as far as some resource scope grants it: the letters both allow, for a
/// scope whose type is the entry's or `*` (a policy `*` entry meets a concrete-type scope as
/// that type). The scope's query is added to the criteria. A `patient/` scope confines the
/// grant to the compartment of `patient`; a different compartment the policy entry already
/// had is kept as a `_compartment` criterion, so it still applies.
///
/// Fails with [`MissingPatientContext`] when a `patient/` scope is present and `patient` is
/// `None`.
pub fn effective_policy(
    policy: &AccessPolicy,
    scopes: &ScopeSet,
    patient: Option<&Reference>,
) -> Result<EffectivePolicy, MissingPatientContext> {
    let mut out = EffectivePolicy {
        entries: Vec::new(),
        interactions: Vec::new(),
    };
    if scopes.needs_patient_context() && patient.is_none() {
        return Err(MissingPatientContext);
    }
    for entry in &policy.resources {
        let allowed = entry.allowed_interactions();
        let letters = Permissions::from_interactions(&allowed);
        let compartment = entry_compartment(policy, entry);
        for scope in scopes.resource_scopes() {
            let resource_type = match &scope.resource_type {
                ResourceType::Any => entry.resource_type.clone(),
                ResourceType::Named(name) if entry.resource_type == "*" => name.clone(),
                ResourceType::Named(name) if *name == entry.resource_type => name.clone(),
                ResourceType::Named(_) => continue,
            };
            let permissions = letters.intersection(scope.permissions);
            if permissions.is_empty() {
                continue;
            }
            let mut criteria: Vec<String> = entry
                .criteria
                .iter()
                .map(|c| typed_criteria(c, &entry.resource_type, &resource_type))
                .collect();
            let compartment = match (scope.context, patient) {
                (Context::Patient, None) => return Err(MissingPatientContext),
                (Context::Patient, Some(patient)) => {
                    if let Some(own) = compartment
                        && own != patient
                    {
                        criteria.push(format!("{resource_type}?_compartment={own}"));
                    }
                    Some(patient.clone())
                }
                (Context::User | Context::System, _) => compartment.cloned(),
            };
            if let Some(query) = &scope.query {
                criteria.push(format!("{resource_type}?{query}"));
            }
            let exact = allowed
                .iter()
                .copied()
                .filter(|i| permissions.contains(*i))
                .collect();
            let grant = GrantEntry {
                resource_type,
                permissions,
                criteria,
                compartment,
            };
            out.push(grant, exact, true);
        }
    }
    Ok(out)
}

/// The compartment an entry is confined to: its own, or else the policy's.
fn entry_compartment<'a>(
    policy: &'a AccessPolicy,
    entry: &'a ResourcePolicy,
) -> Option<&'a Reference> {
    entry.compartment.as_ref().or(policy.compartment.as_ref())
}

/// Policy criteria of a `*` entry applied to a concrete type: a leading `*?` becomes
/// `Type?` (as Medplum does).
fn typed_criteria(criteria: &str, entry_type: &str, resource_type: &str) -> String {
    match criteria.strip_prefix("*?") {
        Some(rest) if entry_type == "*" && resource_type != "*" => {
            format!("{resource_type}?{rest}")
        }
        _ => criteria.to_owned(),
    }
}

/// [`ScopeSet::narrow_to_policy`].
pub(crate) fn narrow(scopes: &ScopeSet, policy: &AccessPolicy) -> ScopeSet {
    let mut star: Option<Permissions> = None;
    let mut by_type: BTreeMap<&str, Permissions> = BTreeMap::new();
    for entry in &policy.resources {
        let letters = Permissions::from_interactions(&entry.allowed_interactions());
        if entry.resource_type == "*" {
            star = Some(star.unwrap_or_default().union(letters));
        } else {
            let slot = by_type.entry(entry.resource_type.as_str()).or_default();
            *slot = slot.union(letters);
        }
    }
    let star_letters = star.unwrap_or_default();
    let mut out = ScopeSet::empty();
    for scope in scopes.iter() {
        let Scope::Resource(resource) = scope else {
            out.insert(scope.clone());
            continue;
        };
        match &resource.resource_type {
            ResourceType::Named(name) => {
                let allowed = by_type
                    .get(name.as_str())
                    .copied()
                    .unwrap_or_default()
                    .union(star_letters);
                let permissions = resource.permissions.intersection(allowed);
                if !permissions.is_empty() {
                    out.insert(Scope::Resource(resource.with_permissions(permissions)));
                }
            }
            ResourceType::Any => {
                let any = resource.permissions.intersection(star_letters);
                if star.is_some() && !any.is_empty() {
                    out.insert(Scope::Resource(resource.with_permissions(any)));
                }
                for (name, letters) in &by_type {
                    if !is_resource_type_name(name) {
                        continue;
                    }
                    let permissions = resource
                        .permissions
                        .intersection(letters.union(star_letters));
                    if permissions.is_empty() || permissions.is_subset(any) {
                        continue;
                    }
                    let typed = resource
                        .with_type(ResourceType::Named((*name).to_owned()))
                        .with_permissions(permissions);
                    out.insert(Scope::Resource(typed));
                }
            }
        }
    }
    out
}
