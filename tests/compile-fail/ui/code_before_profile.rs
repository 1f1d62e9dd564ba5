// A login without a chosen membership cannot be granted a scope or a code.
use fhirgate::Login;
use fhirgate::login::Profile;

async fn skip(login: Login<Profile>) {
    let _ = login.grant(None).await;
}

fn main() {}
