//! A `private_key_jwt` client assertion (RFC 7523 §2.2, SMART asymmetric client
//! authentication): what a backend client signs to authenticate at the token endpoint instead
//! of sending a secret.
//!
//! ```sh
//! cargo run --example client_assertion -- KEY.pem CLIENT_ID KID TOKEN_ENDPOINT
//! ```
//!
//! Prints the compact JWS. With the demo server started on `examples/seed.json`, the committed
//! demo key signs for the `clinic-service` client (README, "A signed client assertion").

use std::process::ExitCode;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, client_id, kid, audience] = args.as_slice() else {
        eprintln!("usage: client_assertion KEY.pem CLIENT_ID KID TOKEN_ENDPOINT");
        return ExitCode::from(2);
    };
    match assertion(key, client_id, kid, audience) {
        Ok(jws) => {
            println!("{jws}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn assertion(key: &str, client_id: &str, kid: &str, audience: &str) -> Result<String, String> {
    fhirgate::crypto::install_provider();
    let pem = std::fs::read(key).map_err(|e| format!("{key}: {e}"))?;
    let key = EncodingKey::from_ec_pem(&pem).map_err(|e| format!("{key}: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|e| e.to_string())?;
    // iss = sub = the client; aud = the token endpoint; a short life (at most 5 minutes
    // ahead) and a jti the server accepts once.
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    encode(&header, &claims, &key).map_err(|e| e.to_string())
}
