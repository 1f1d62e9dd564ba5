// A login that has not presented its password cannot choose a profile or get a code.
use fhirgate::Login;
use fhirgate::login::Credentials;

async fn skip(login: Login<Credentials>) {
    let _ = login.choose_if_single().await;
    let _ = login.grant(None).await;
}

fn main() {}
