// Only stored stages can be resumed: there is no way to resume a login "after the password".
use fhirgate::Engine;
use fhirgate::login::Credentials;

async fn skip(engine: Engine) {
    let _ = engine.resume::<Credentials>("handle").await;
}

fn main() {}
