//! Identity: who a connection says it is, proven by a signed token.
//!
//! Owns the token format and its secret: HS256 JWTs (`jsonwebtoken`) whose
//! claims are `sub` (the user id, a string bounded by the same rule as every
//! other id the server keeps, `domain::ids::check_id_text`), `role`
//! (`student`, `teacher` or `admin`), `name` (a display name: 1 to
//! [`MAX_NAME_CHARS`] characters, no control characters), `exp` (required,
//! seconds since the epoch, checked with [`LEEWAY_S`] of leeway for clock
//! skew) and optionally `iat`. Other claims (`aud`, `iss`, `nbf`...) are
//! ignored. Only HS256 is accepted: `alg: none`, the other HMAC sizes and
//! every public-key algorithm are refused before the signature is looked at.
//!
//! The secret is [`TokenKeys`]: given as text (`--token-secret`), or kept in
//! `<data_dir>/token-secret` ([`TokenKeys::load_or_create`]). Either way it
//! is at least [`MIN_SECRET_BYTES`] bytes (RFC 7518 3.2: an HS256 key is no
//! shorter than the hash).
//!
//! Must never panic on a token: every failure is a [`TokenError`]. Must never
//! log or print a secret (`TokenKeys`'s `Debug` hides it).
//!
//! What a verified [`Identity`] allows is not decided here: today the
//! WebSocket upgrade only refuses bad tokens (HTTP 401) and carries the
//! identity into the session.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::ids::{BadId, UserId};

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Seconds a token is still accepted past its `exp` (clock skew between the
/// minting machine and this one).
pub const LEEWAY_S: u64 = 30;
/// The file of the data directory that keeps the generated secret.
pub const SECRET_FILE: &str = "token-secret";

/// What a token says its holder may act as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Teacher,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = BadClaim;

    fn from_str(s: &str) -> Result<Role, BadClaim> {
        match s {
            "student" => Ok(Role::Student),
            "teacher" => Ok(Role::Teacher),
            "admin" => Ok(Role::Admin),
            _ => Err(BadClaim::Role),
        }
    }
}

/// The claims of a token, as minted and as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub name: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

impl Claims {
    /// Claims issued now, valid for `ttl`.
    pub fn new(sub: impl Into<String>, role: Role, name: impl Into<String>, ttl: Duration) -> Self {
        let now = unix_now();
        Claims {
            sub: sub.into(),
            role,
            name: name.into(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
        }
    }

    /// The identity these claims name, if `sub` and `name` are within bounds.
    pub fn identity(&self) -> Result<Identity, BadClaim> {
        let user = UserId::parse(&Value::String(self.sub.clone())).map_err(BadClaim::Sub)?;
        check_name(&self.name)?;
        Ok(Identity {
            // Proven by the token: the namespace of signed-in users.
            user: user.signed(),
            role: self.role,
            name: Arc::from(self.name.as_str()),
            expires_at: self.exp,
        })
    }
}

/// Why claims are not an identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadClaim {
    #[error("sub: {0}")]
    Sub(BadId),
    #[error("role: not student, teacher or admin")]
    Role,
    #[error("name: empty")]
    EmptyName,
    #[error("name: longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error("name: control character")]
    NameControlCharacter,
}

fn check_name(name: &str) -> Result<(), BadClaim> {
    if name.is_empty() {
        Err(BadClaim::EmptyName)
    } else if name.chars().count() > MAX_NAME_CHARS {
        Err(BadClaim::NameTooLong)
    } else if name.chars().any(char::is_control) {
        Err(BadClaim::NameControlCharacter)
    } else {
        Ok(())
    }
}

/// Who a verified token says its holder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    user: UserId,
    role: Role,
    name: Arc<str>,
    expires_at: u64,
}

impl Identity {
    /// The user id (`sub`), as a key like every other id the server keeps, in
    /// the namespace of signed-in users (`UserKey::is_signed`).
    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `exp`: seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// Why a token was refused. The `Display` text is what the client is told
/// (HTTP 401 body): it names the kind of failure, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON, or a header naming no known algorithm
    /// (`alg: none` included).
    #[error("malformed token")]
    Malformed,
    /// Signed with an algorithm other than HS256.
    #[error("token not signed with HS256")]
    WrongAlgorithm,
    /// The signature does not match: another secret, or altered content.
    #[error("bad token signature")]
    BadSignature,
    /// Past `exp` (and the leeway).
    #[error("token expired")]
    Expired,
    /// Signed and current, but the claims are missing or out of bounds.
    #[error("bad token claims: {0}")]
    BadClaims(String),
    /// The server has no secret to check tokens with (a library server
    /// started without `Config::tokens`).
    #[error("this server accepts no tokens")]
    NotAccepted,
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(error: jsonwebtoken::errors::Error) -> TokenError {
        match error.kind() {
            JwtErrorKind::InvalidSignature => TokenError::BadSignature,
            JwtErrorKind::ExpiredSignature => TokenError::Expired,
            JwtErrorKind::InvalidAlgorithm
            | JwtErrorKind::UnsupportedAlgorithm
            | JwtErrorKind::MissingAlgorithm => TokenError::WrongAlgorithm,
            JwtErrorKind::MissingRequiredClaim(claim) => {
                TokenError::BadClaims(format!("{claim}: missing"))
            }
            JwtErrorKind::InvalidClaimFormat(claim) => {
                TokenError::BadClaims(format!("{claim}: wrong type"))
            }
            JwtErrorKind::ImmatureSignature
            | JwtErrorKind::InvalidAudience
            | JwtErrorKind::InvalidIssuer
            | JwtErrorKind::InvalidSubject => TokenError::BadClaims(error.to_string()),
            _ => TokenError::Malformed,
        }
    }
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{0}")]
    Claims(#[from] BadClaim),
    #[error("cannot sign: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Why there is no usable secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("token secret shorter than {MIN_SECRET_BYTES} bytes")]
    TooShort,
    #[error(
        "{path} can be read by other users (mode {mode:o}); `chmod 600` it, or remove it to \
         have a new one generated (tokens signed with it stop verifying)"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_owned(),
        source,
    }
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// The secret tokens are signed and verified with. Cheap to clone.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKeys(<secret>)")
    }
}

impl TokenKeys {
    /// Keys from the secret's bytes (`--token-secret`: the text's UTF-8).
    pub fn from_secret(secret: &[u8]) -> Result<TokenKeys, SecretError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        let (encoding, decoding) = match (
            EncodingKey::from_secret(secret),
            DecodingKey::from_secret(secret),
        ) {
            (Ok(encoding), Ok(decoding)) => (encoding, decoding),
            // Only an empty secret fails, and it is refused above.
            _ => return Err(SecretError::TooShort),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_S;
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        Ok(TokenKeys(Arc::new(Keys {
            encoding,
            decoding,
            validation,
        })))
    }

    /// The secret kept in `<data_dir>/token-secret`, generated at the first
    /// start: 32 random bytes written as 64 hex digits, and those digits (the
    /// file's text without its trailing newline) are the secret, so that
    /// `TOKEN_SECRET=$(cat data/token-secret)` signs the same tokens.
    ///
    /// The file is written to a temporary name at mode 0600 and linked into
    /// place, which fails if it exists: two processes starting at once on one
    /// data directory both end up with the one that was linked first, and
    /// nobody reads a half-written file. An existing file that other users can
    /// read or write (any of mode 077) is refused rather than used: a leaked
    /// secret lets anyone mint any identity.
    pub fn load_or_create(data_dir: &Path) -> Result<TokenKeys, SecretError> {
        std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
        let path = data_dir.join(SECRET_FILE);
        match read_secret(&path) {
            Ok(secret) => return TokenKeys::from_secret(&secret),
            Err(SecretError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        create_secret(data_dir, &path)?;
        TokenKeys::from_secret(&read_secret(&path)?)
    }

    /// A signed token for `claims`, refused if the server would refuse it.
    pub fn mint(&self, claims: &Claims) -> Result<String, MintError> {
        claims.identity()?;
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.0.encoding,
        )?)
    }

    /// The identity a token proves: signed with this secret in HS256, not
    /// expired, claims within bounds.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let data = jsonwebtoken::decode::<Value>(token, &self.0.decoding, &self.0.validation)?;
        let claims: Claims = serde_json::from_value(data.claims)
            .map_err(|error| TokenError::BadClaims(error.to_string()))?;
        claims
            .identity()
            .map_err(|bad| TokenError::BadClaims(bad.to_string()))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(io_error(path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(io_error(path))?;
    while text.last().is_some_and(u8::is_ascii_whitespace) {
        text.pop();
    }
    Ok(text)
}

fn create_secret(data_dir: &Path, path: &Path) -> Result<(), SecretError> {
    let bytes: [u8; 32] = rand::random();
    let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    let temp = data_dir.join(format!(
        ".{SECRET_FILE}.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new token secret");
            Ok(())
        }
        // Another process created it first: use theirs.
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(SecretError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64_like::encode_part;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(SECRET).expect("keys")
    }

    fn claims() -> Claims {
        Claims::new("carol", Role::Student, "Carol", Duration::from_secs(3600))
    }

    /// A token with any header and claims, signed (HS256) with `SECRET` by
    /// hand, for what `mint` refuses to produce.
    fn hand_signed(header: &Value, claims: &Value, alg: Algorithm) -> String {
        let key = EncodingKey::from_secret(SECRET).expect("key");
        let mut header_value = header.clone();
        if let Some(object) = header_value.as_object_mut() {
            object.insert("typ".into(), "JWT".into());
        }
        let head = encode_part(&header_value);
        let body = encode_part(claims);
        let message = format!("{head}.{body}");
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).expect("signature");
        format!("{message}.{signature}")
    }

    mod base64_like {
        use base64::Engine;
        pub fn encode_part(value: &serde_json::Value) -> String {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(value).expect("json"))
        }
    }

    #[test]
    fn a_minted_token_verifies_to_its_claims() {
        let token = keys().mint(&claims()).expect("mint");
        let identity = keys().verify(&token).expect("verify");
        assert_eq!(identity.user().key.as_str(), "carol");
        assert_eq!(identity.role(), Role::Student);
        assert_eq!(identity.name(), "Carol");
        assert_eq!(identity.expires_at(), claims().exp);
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let token = keys().mint(&claims()).expect("mint");
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged.role = Role::Admin;
        let body = encode_part(&serde_json::to_value(&forged).expect("json"));
        let tampered = format!("{}.{}.{}", parts[0], body, parts[2]);
        assert_eq!(keys().verify(&tampered), Err(TokenError::BadSignature));
    }

    #[test]
    fn another_secret_fails_the_signature() {
        let other = TokenKeys::from_secret(b"another secret of at least 32 bytes!").expect("keys");
        let token = other.mint(&claims()).expect("mint");
        assert_eq!(keys().verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn an_expired_token_is_refused_but_the_leeway_is_granted() {
        let mut old = claims();
        old.exp = unix_now() - 3600;
        let token = keys().mint(&old).expect("mint");
        assert_eq!(keys().verify(&token), Err(TokenError::Expired));
        old.exp = unix_now() - LEEWAY_S / 2;
        let token = keys().mint(&old).expect("mint");
        assert!(keys().verify(&token).is_ok());
    }

    #[test]
    fn exp_is_required() {
        let body = serde_json::json!({"sub": "carol", "role": "student", "name": "Carol"});
        let token = hand_signed(
            &serde_json::json!({"alg": "HS256"}),
            &body,
            Algorithm::HS256,
        );
        assert!(matches!(
            keys().verify(&token),
            Err(TokenError::BadClaims(_))
        ));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let body = serde_json::to_value(claims()).expect("json");
        let head = encode_part(&serde_json::json!({"alg": "none", "typ": "JWT"}));
        let none = format!("{head}.{}.", encode_part(&body));
        assert_eq!(keys().verify(&none), Err(TokenError::Malformed));
        let head = encode_part(&serde_json::json!({"alg": "none", "typ": "JWT"}));
        let none_sig = format!("{head}.{}.c2ln", encode_part(&body));
        assert_eq!(keys().verify(&none_sig), Err(TokenError::Malformed));
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = hand_signed(&serde_json::json!({"alg": format!("{alg:?}")}), &body, alg);
            assert_eq!(keys().verify(&token), Err(TokenError::WrongAlgorithm));
        }
        // A public-key algorithm naming our secret as its key (the classic confusion).
        let head = encode_part(&serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        let rs = format!("{head}.{}.c2ln", encode_part(&body));
        assert_eq!(keys().verify(&rs), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "abc", "a.b", "a.b.c", "....", "\u{0}.\u{1}.\u{2}"] {
            assert_eq!(
                keys().verify(token),
                Err(TokenError::Malformed),
                "{token:?}"
            );
        }
    }

    #[test]
    fn a_bad_role_is_refused() {
        let mut body = serde_json::to_value(claims()).expect("json");
        body["role"] = "superuser".into();
        let token = hand_signed(
            &serde_json::json!({"alg": "HS256"}),
            &body,
            Algorithm::HS256,
        );
        assert!(matches!(
            keys().verify(&token),
            Err(TokenError::BadClaims(_))
        ));
    }

    #[test]
    fn sub_and_name_have_the_id_rules() {
        let long = "x".repeat(crate::domain::ids::MAX_ID_BYTES + 1);
        for (sub, name) in [
            (long.as_str(), "Carol"),
            ("", "Carol"),
            ("ca\nrol", "Carol"),
            ("carol", ""),
            ("carol", "Ca\u{7}rol"),
        ] {
            let mut body = serde_json::to_value(claims()).expect("json");
            body["sub"] = sub.into();
            body["name"] = name.into();
            let token = hand_signed(
                &serde_json::json!({"alg": "HS256"}),
                &body,
                Algorithm::HS256,
            );
            assert!(
                matches!(keys().verify(&token), Err(TokenError::BadClaims(_))),
                "{sub:?} {name:?}"
            );
        }
        let mut body = serde_json::to_value(claims()).expect("json");
        body["name"] = "n".repeat(MAX_NAME_CHARS + 1).into();
        let token = hand_signed(
            &serde_json::json!({"alg": "HS256"}),
            &body,
            Algorithm::HS256,
        );
        assert!(matches!(
            keys().verify(&token),
            Err(TokenError::BadClaims(_))
        ));
        // A numeric sub is not a string.
        body["name"] = "Carol".into();
        body["sub"] = 7.into();
        let token = hand_signed(
            &serde_json::json!({"alg": "HS256"}),
            &body,
            Algorithm::HS256,
        );
        assert!(matches!(
            keys().verify(&token),
            Err(TokenError::BadClaims(_))
        ));
        // mint refuses what verify would refuse.
        let mut bad = claims();
        bad.sub = long;
        assert!(matches!(keys().mint(&bad), Err(MintError::Claims(_))));
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(matches!(
            TokenKeys::from_secret(b"short"),
            Err(SecretError::TooShort)
        ));
    }

    #[test]
    fn the_secret_file_is_created_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("nested");
        let first = TokenKeys::load_or_create(&data).expect("create");
        let path = data.join(SECRET_FILE);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.trim_end().len(), 64);
        let token = first.mint(&claims()).expect("mint");
        let second = TokenKeys::load_or_create(&data).expect("load");
        assert!(second.verify(&token).is_ok());
        // The file's text is the secret, usable as --token-secret.
        let given = TokenKeys::from_secret(text.trim_end().as_bytes()).expect("keys");
        assert!(given.verify(&token).is_ok());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&data)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(SECRET_FILE)]);
    }

    #[test]
    fn an_exposed_secret_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        TokenKeys::load_or_create(dir.path()).expect("create");
        let path = dir.path().join(SECRET_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            TokenKeys::load_or_create(dir.path()),
            Err(SecretError::Exposed { mode: 0o644, .. })
        ));
    }

    #[test]
    fn processes_racing_to_create_share_one_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || TokenKeys::load_or_create(&path).expect("load"))
            })
            .collect();
        let keys: Vec<TokenKeys> = threads
            .into_iter()
            .map(|t| t.join().expect("join"))
            .collect();
        let token = keys[0].mint(&claims()).expect("mint");
        for other in &keys {
            assert!(other.verify(&token).is_ok());
        }
    }
}
