// The second factor belongs to the Credentials stage; the Domain stage cannot take a code.
use fhirgate::Login;
use fhirgate::login::Domain;

async fn skip(login: Login<Domain>) {
    let _ = login.totp("123456").await;
}

fn main() {}
