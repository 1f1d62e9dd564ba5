// A stage cannot be made from a stored record outside the login machine: only
// `Engine::resume` turns a record into a stage, after checking its tag, deadline and
// revocation. (The trait that builds stages from records is sealed inside `login`.)
use fhirgate::login::{Profile, Resumable};
use fhirgate::model::LoginRecord;

fn mint(record: LoginRecord) -> Profile {
    <Profile as Resumable>::from_stored(record)
}

fn main() {}
