//! Scopes in words, for consent and sign-in pages: what a person is agreeing to, next to the
//! raw scope string.

use super::{Context, Permissions, ResourceScope, ResourceType, Scope, ScopeSet};

impl Scope {
    /// A short English description of what the scope lets an app do, such as "read and
    /// search Observation records of the selected patient". Unknown scopes are described as
    /// themselves.
    pub fn describe(&self) -> String {
        match self {
            Scope::OpenId => "confirm who you are".to_owned(),
            Scope::FhirUser => "know which FHIR profile you act as".to_owned(),
            Scope::Profile => "see your name".to_owned(),
            Scope::Email => "see your email address".to_owned(),
            Scope::OfflineAccess => {
                "keep access after you close the app (until you sign out or it expires)".to_owned()
            }
            Scope::OnlineAccess => "keep access while you are signed in".to_owned(),
            Scope::Launch => "use the patient or encounter the EHR opened it with".to_owned(),
            Scope::LaunchPatient => "ask you to select a patient".to_owned(),
            Scope::LaunchEncounter => "ask you to select an encounter".to_owned(),
            Scope::Resource(resource) => resource.describe(),
            Scope::Other(token) => format!("use \u{201c}{token}\u{201d}"),
        }
    }
}

impl ResourceScope {
    /// A short English description: the permitted verbs, the records and whose they are.
    pub fn describe(&self) -> String {
        let verbs = verbs(self.permissions);
        let records = match &self.resource_type {
            ResourceType::Any => "all records".to_owned(),
            ResourceType::Named(name) => format!("{name} records"),
        };
        let whose = match self.context {
            Context::Patient => "of the selected patient",
            Context::User => "you have access to",
            Context::System => "the app has access to, without a user",
        };
        let mut text = format!("{verbs} {records} {whose}");
        if let Some(query) = &self.query {
            text.push_str(&format!(" (only where {query})"));
        }
        text
    }
}

impl ScopeSet {
    /// Each scope with its description, in the set's order.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.iter().map(|s| (s.to_string(), s.describe())).collect()
    }
}

/// "read, search and create", "update", … for a set of SMART letters.
fn verbs(permissions: Permissions) -> String {
    const WORDS: [(char, &str); 5] = [
        ('r', "read"),
        ('s', "search"),
        ('c', "create"),
        ('u', "update"),
        ('d', "delete"),
    ];
    let words: Vec<&str> = WORDS
        .iter()
        .filter(|(letter, _)| permissions.contains_letter(*letter))
        .map(|(_, word)| *word)
        .collect();
    match words.as_slice() {
        [] => "no access to".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        ScopeSet::parse(text)
            .unwrap_or_default()
            .describe()
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    #[test]
    fn resource_scopes_say_verbs_records_and_whose() {
        assert_eq!(
            words("patient/Observation.rs"),
            ["read and search Observation records of the selected patient"]
        );
        assert_eq!(
            words("user/*.cruds"),
            ["read, search, create, update and delete all records you have access to"]
        );
        assert_eq!(
            words("system/Patient.read"),
            ["read and search Patient records the app has access to, without a user"]
        );
        assert_eq!(
            words("patient/Observation.rs?category=laboratory"),
            [
                "read and search Observation records of the selected patient \
                 (only where category=laboratory)"
            ]
        );
        assert_eq!(
            words("user/Condition.c"),
            ["create Condition records you have access to"]
        );
    }

    #[test]
    fn simple_scopes_have_words_and_unknown_ones_name_themselves() {
        assert_eq!(words("openid"), ["confirm who you are"]);
        assert_eq!(words("launch/patient"), ["ask you to select a patient"]);
        assert_eq!(words("phone"), ["use \u{201c}phone\u{201d}"]);
        let described = ScopeSet::parse("openid offline_access")
            .unwrap_or_default()
            .describe();
        assert_eq!(described.len(), 2);
        assert!(described.iter().any(|(raw, _)| raw == "offline_access"));
    }
}
