// A login waiting for its second factor has no way to choose a profile.
use fhirgate::Login;
use fhirgate::login::SecondFactor;

async fn skip(login: Login<SecondFactor>) {
    let _ = login.choose_if_single().await;
}

fn main() {}
