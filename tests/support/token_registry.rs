//! A real docker-registry configured for token auth, with a small token issuer in the test
//! process: it checks a user's password and signs ES256 JWTs granting what the password allows
//! (pull and push on any repository), as Docker Hub's token service does.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::hostile::{HostileServer, Reply, Request};
use super::Registry;

pub const USER: &str = "pusher";
pub const PASSWORD: &str = "s3cret-push";
const SERVICE: &str = "sandbox-test";
const ISSUER: &str = "sandbox-test-issuer";

pub struct TokenRegistry {
    pub registry: Registry,
    pub issuer: HostileServer,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The actions `scope` (`repository:NAME:ACTIONS`) asks for on which repository.
fn access(scope: &str) -> Option<(String, Vec<String>)> {
    let mut parts = scope.splitn(3, ':');
    (parts.next()? == "repository").then_some(())?;
    let name = parts.next()?.to_owned();
    let actions = parts.next()?.split(',').map(str::to_owned).collect();
    Some((name, actions))
}

fn query_param(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            v.replace("%3A", ":")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
    })
}

impl TokenRegistry {
    pub fn start() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("an ECDSA key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the key");
        let cert_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("the key for the cert");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sandbox test token issuer");
        let cert = params.self_signed(&cert_key).expect("a certificate");
        let cert_der = cert.der().to_vec();
        let cert_pem = cert.pem();
        let issuer = HostileServer::start(move |request: &Request| {
            if !request.path.starts_with("/token") {
                return Reply::status(404);
            }
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
            );
            let authorized = request.header("authorization") == Some(expected.as_str());
            if request.header("authorization").is_some() && !authorized {
                return Reply::status(401);
            }
            // The password grants what is asked; no password grants nothing.
            let granted: Vec<serde_json::Value> = query_param(&request.path, "scope")
                .and_then(|s| access(&s))
                .filter(|_| authorized)
                .map(|(name, actions)| {
                    vec![
                        serde_json::json!({"type": "repository", "name": name, "actions": actions}),
                    ]
                })
                .unwrap_or_default();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let header = serde_json::json!({
                "typ": "JWT",
                "alg": "ES256",
                "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)],
            });
            let claims = serde_json::json!({
                "iss": ISSUER,
                "sub": if authorized { USER } else { "" },
                "aud": SERVICE,
                "exp": now + 600,
                "nbf": now - 60,
                "iat": now,
                "jti": format!("{now}-{}", request.path.len()),
                "access": granted,
            });
            let signing_input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let signature = key
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .expect("a signature");
            let token = format!("{signing_input}.{}", b64(signature.as_ref()));
            Reply::body(
                200,
                "application/json",
                serde_json::json!({"token": token, "access_token": token, "expires_in": 600})
                    .to_string()
                    .into_bytes(),
            )
        });
        let realm = format!("http://127.0.0.1:{}/token", issuer.port);
        let registry = Registry::start_with(move |dir| {
            let bundle = dir.join("token.crt");
            std::fs::write(&bundle, &cert_pem).expect("write the bundle");
            format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                bundle.display()
            )
        });
        Self { registry, issuer }
    }
}
