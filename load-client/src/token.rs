//! `--token-secret`: the tokens the simulated users connect with.
//!
//! Owns minting one HS256 JWT per connection (`jsonwebtoken`), with the claims the
//! server reads (docs/PROTOCOL.md 1.7): `sub` (the user's id as text, the same id it
//! joins with), `role` (`student` or `teacher`), `name`, `exp` (an hour from now) and
//! `iat`, and adding it to the endpoint as the `token` query parameter. Deliberately its
//! own code, not the server's: a shared implementation would hide a bug common to both.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// How long a minted token is valid, in seconds.
const TTL_S: u64 = 3600;

/// Which kind of simulated user a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Student,
    Teacher,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    role: &'a str,
    name: String,
    exp: u64,
    iat: u64,
}

/// Signs tokens with the secret shared with the server.
pub struct Minter {
    key: EncodingKey,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minter(<secret>)")
    }
}

impl Minter {
    pub fn new(secret: &str) -> anyhow::Result<Minter> {
        let key = EncodingKey::from_secret(secret.as_bytes()).context("--token-secret")?;
        Ok(Minter { key })
    }

    /// A token for user `id` of `role`, valid for an hour.
    pub fn mint(&self, role: Role, id: u64) -> anyhow::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            sub: id.to_string(),
            role: role.as_str(),
            name: format!("{} {id}", role.as_str()),
            exp: now + TTL_S,
            iat: now,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .context("cannot sign a token")
    }
}

/// `endpoint` with `token` added to its query. A JWT is base64url and dots, which
/// need no percent-encoding.
pub fn with_token(endpoint: &str, token: &str) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_in_the_query() {
        assert_eq!(
            with_token("ws://h:1/ws", "a.b.c"),
            "ws://h:1/ws?token=a.b.c"
        );
        assert_eq!(
            with_token("ws://h:1/socket/websocket?vsn=2.0.0", "a.b.c"),
            "ws://h:1/socket/websocket?vsn=2.0.0&token=a.b.c"
        );
    }

    #[test]
    fn a_token_has_three_parts_and_the_claims() {
        let minter = Minter::new("a load-client test secret of 32+ bytes").expect("minter");
        let token = minter.mint(Role::Teacher, 7).expect("mint");
        assert_eq!(token.split('.').count(), 3);
        let key = jsonwebtoken::DecodingKey::from_secret(b"a load-client test secret of 32+ bytes")
            .expect("key");
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &key,
            &jsonwebtoken::Validation::new(Algorithm::HS256),
        )
        .expect("verifies");
        assert_eq!(data.claims["sub"], "7");
        assert_eq!(data.claims["role"], "teacher");
    }
}
