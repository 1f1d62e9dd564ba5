// Stages cannot be built outside the crate: a Login<Consent> comes only from a real transition.
use fhirgate::login::Consent;
use fhirgate::{Engine, Login};

fn forge(engine: Engine, stage: Consent) -> Login<Consent> {
    Login { engine, stage }
}

fn main() {}
