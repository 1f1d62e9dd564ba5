// Stages cannot be built outside the crate: a Login<Scope> comes only from a real transition.
use fhirgate::login::Scope;
use fhirgate::{Engine, Login};

fn forge(engine: Engine, stage: Scope) -> Login<Scope> {
    Login { engine, stage }
}

fn main() {}
