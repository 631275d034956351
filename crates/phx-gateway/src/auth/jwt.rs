//! JWT authentication (docs/gateway.md, `method = "jwt"`): `jsonwebtoken` checks the
//! signature and the registered claims; this module picks the key (inline, file or
//! JWKS), ties the accepted algorithms to one family, and turns claims into assigns.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::jwks::Jwks;
use crate::config::reader::Table;
use crate::config::TokenSource;
use crate::template::Template;

/// The algorithms the gateway accepts in `algorithms` (docs/gateway.md).
const SUPPORTED: &[(&str, Algorithm)] = &[
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// Where the verification key comes from.
pub enum KeySource {
    Static(DecodingKey),
    Jwks(Uri),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static(_) => f.write_str("Static(..)"),
            Self::Jwks(uri) => f.debug_tuple("Jwks").field(uri).finish(),
        }
    }
}

/// `[socket.auth]` with `method = "jwt"`, checked.
#[derive(Debug)]
pub struct JwtConfig {
    pub algorithms: Vec<Algorithm>,
    pub family: AlgorithmFamily,
    pub key: KeySource,
    pub jwks_refresh: Duration,
    pub jwks_min_interval: Duration,
    pub leeway: Duration,
    pub audience: Option<Vec<String>>,
    pub issuer: Option<Vec<String>>,
    pub require_exp: bool,
    pub claims: Option<Vec<String>>,
    pub token: TokenSource,
    pub socket_id: Option<Template>,
}

fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "HS (shared secret)",
        AlgorithmFamily::Rsa => "RS (RSA)",
        AlgorithmFamily::Ec => "ES (ECDSA)",
        AlgorithmFamily::Ed => "EdDSA",
    }
}

/// Reads the JWT keys of `[socket.auth]` (the caller read `method`, `token`,
/// `socket_id`). `None` after recording problems.
pub fn config(
    t: &Table<'_, '_>,
    base_dir: &Path,
    token: TokenSource,
    socket_id: Option<Template>,
) -> Option<JwtConfig> {
    let names = t.strings("algorithms");
    if names.is_none() && !t.has("algorithms") {
        t.error(
            "algorithms",
            "missing: list the accepted algorithms, e.g. [\"RS256\"]",
        );
    }
    let mut algorithms = Vec::new();
    for name in names.unwrap_or_default() {
        match SUPPORTED.iter().find(|(n, _)| *n == name) {
            Some((_, alg)) => algorithms.push(*alg),
            None => t.error(
                "algorithms",
                format!(
                    "{name:?} is not supported (HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA; never \"none\")"
                ),
            ),
        }
    }
    let family = algorithms.first().map(|a| a.family());
    if let Some(family) = family {
        if algorithms.iter().any(|a| a.family() != family) {
            t.error(
                "algorithms",
                "mixes algorithm families: list algorithms of one family only (a key of one family used with another is how algorithm-confusion attacks work)",
            );
        }
    } else if t.has("algorithms") {
        t.error("algorithms", "may not be empty");
    }

    let secret = t.string("secret");
    let public_key = t.string("public_key");
    let public_key_file = t.string("public_key_file");
    let jwks_url = t.string("jwks_url");
    let given: Vec<&str> = [
        ("secret", secret.is_some()),
        ("public_key", public_key.is_some()),
        ("public_key_file", public_key_file.is_some()),
        ("jwks_url", jwks_url.is_some()),
    ]
    .iter()
    .filter(|(_, present)| *present)
    .map(|(name, _)| *name)
    .collect();
    if given.len() > 1 {
        t.error(
            given[1],
            format!("give one key source, not {}", given.join(" and ")),
        );
    } else if given.is_empty()
        && !["secret", "public_key", "public_key_file", "jwks_url"]
            .iter()
            .any(|k| t.has(k))
    {
        t.table_error("a jwt socket needs one of secret, public_key, public_key_file, jwks_url");
    }

    let key = match family {
        Some(AlgorithmFamily::Hmac) => {
            for (key, present) in [
                ("public_key", public_key.is_some()),
                ("public_key_file", public_key_file.is_some()),
                ("jwks_url", jwks_url.is_some()),
            ] {
                if present {
                    t.error(
                        key,
                        "HS algorithms verify with a shared `secret`, not a public key",
                    );
                }
            }
            match &secret {
                Some(s) if s.len() < 32 => {
                    t.error("secret", "too short: an HS key needs at least 32 bytes");
                    None
                }
                Some(s) => match DecodingKey::from_secret(s.as_bytes()) {
                    Ok(k) => Some(KeySource::Static(k)),
                    Err(e) => {
                        t.error("secret", e.to_string());
                        None
                    }
                },
                None => None,
            }
        }
        Some(family) => {
            if secret.is_some() {
                t.error(
                    "secret",
                    format!(
                        "{} algorithms verify with a public key, never a shared secret",
                        family_name(family)
                    ),
                );
            }
            let pem = match (&public_key, &public_key_file) {
                (Some(pem), _) => Some(("public_key", pem.clone().into_bytes())),
                (None, Some(file)) => {
                    let path = base_dir.join(file);
                    match std::fs::read(&path) {
                        Ok(bytes) => Some(("public_key_file", bytes)),
                        Err(e) => {
                            t.error(
                                "public_key_file",
                                format!("cannot read {}: {e}", path.display()),
                            );
                            None
                        }
                    }
                }
                _ => None,
            };
            match (pem, &jwks_url) {
                (Some((key, pem)), _) => {
                    let parsed = match family {
                        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                        _ => DecodingKey::from_ed_pem(&pem),
                    };
                    match parsed {
                        Ok(k) => Some(KeySource::Static(k)),
                        Err(e) => {
                            t.error(
                                key,
                                format!("not a {} public key in PEM: {e}", family_name(family)),
                            );
                            None
                        }
                    }
                }
                (None, Some(url)) => match url.parse::<Uri>() {
                    Ok(uri)
                        if matches!(uri.scheme_str(), Some("http" | "https"))
                            && uri.authority().is_some() =>
                    {
                        Some(KeySource::Jwks(uri))
                    }
                    _ => {
                        t.error(
                            "jwks_url",
                            format!("{url:?} is not an http:// or https:// URL"),
                        );
                        None
                    }
                },
                (None, None) => None,
            }
        }
        None => None,
    };

    let jwks_refresh = t
        .duration("jwks_refresh")
        .unwrap_or(Duration::from_secs(600));
    let jwks_min_interval = t
        .duration("jwks_min_interval")
        .unwrap_or(Duration::from_secs(30));
    if jwks_url.is_none() {
        for k in ["jwks_refresh", "jwks_min_interval"] {
            if t.has(k) {
                t.error(k, "only used with jwks_url");
            }
        }
    }
    let leeway = t.duration("leeway").unwrap_or(Duration::from_secs(30));
    let audience = t.string_or_strings("audience");
    let issuer = t.string_or_strings("issuer");
    let require_exp = t.bool("require_exp").unwrap_or(true);
    let claims = t.strings("claims");
    Some(JwtConfig {
        algorithms,
        family: family?,
        key: key?,
        jwks_refresh,
        jwks_min_interval,
        leeway,
        audience,
        issuer,
        require_exp,
        claims,
        token,
        socket_id,
    })
}

/// Why a token was refused (logged; the client only sees 403).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("no token")]
    Missing,
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no key for kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("{0}")]
    Rejected(jsonwebtoken::errors::Error),
}

/// Verifies tokens for one socket.
pub struct JwtVerifier {
    config: JwtConfig,
    validation: Validation,
    jwks: Option<Jwks>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.config.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    pub fn new(config: JwtConfig) -> anyhow::Result<Self> {
        let mut validation = Validation::new_for_family(config.family);
        validation.algorithms = config.algorithms.clone();
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let required: Vec<&str> = if config.require_exp {
            vec!["exp"]
        } else {
            vec![]
        };
        validation.set_required_spec_claims(&required);
        match &config.audience {
            Some(aud) => validation.set_audience(aud),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(iss);
        }
        let jwks = match &config.key {
            KeySource::Jwks(url) => Some(Jwks::new(
                url.clone(),
                config.jwks_refresh,
                config.jwks_min_interval,
            )?),
            KeySource::Static(_) => None,
        };
        Ok(Self {
            config,
            validation,
            jwks,
        })
    }

    /// Where the token is read from.
    pub fn token_source(&self) -> &TokenSource {
        &self.config.token
    }

    /// The socket id template.
    pub fn socket_id(&self) -> Option<&Template> {
        self.config.socket_id.as_ref()
    }

    /// Fetches the JWKS once at start (a failure is logged; tokens fetch again).
    pub async fn warm_up(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.prefetch().await;
        }
    }

    /// The token's claims (filtered by `claims`) if it is valid.
    pub async fn verify(&self, token: Option<&str>) -> Result<Map<String, Value>, JwtError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(JwtError::Missing)?;
        // The header, unverified, only to choose the key: `alg` must be listed before
        // any key is looked at, and `kid` picks a JWKS key.
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
        }
        let key: Arc<DecodingKey> = match (&self.config.key, &self.jwks) {
            (KeySource::Static(key), _) => {
                return self.decode(token, key);
            }
            (KeySource::Jwks(_), Some(jwks)) => jwks
                .key(header.kid.as_deref(), self.config.family, header.alg)
                .await
                .ok_or(JwtError::UnknownKey(header.kid))?,
            (KeySource::Jwks(_), None) => return Err(JwtError::UnknownKey(header.kid)),
        };
        self.decode(token, &key)
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Map<String, Value>, JwtError> {
        if key.family() != self.config.family {
            return Err(JwtError::Algorithm("key of another family".into()));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(JwtError::Rejected)?;
        let mut claims = data.claims;
        if let Some(keep) = &self.config.claims {
            claims.retain(|k, _| keep.iter().any(|c| c == k));
        }
        Ok(claims)
    }
}

/// Whether a JWKS key may verify tokens of `alg` in `family`.
pub fn usable(jwk: &Jwk, family: AlgorithmFamily, alg: Algorithm) -> Option<DecodingKey> {
    if let Some(key_alg) = jwk.common.key_algorithm {
        match Algorithm::try_from(key_alg) {
            Ok(a) if a == alg => {}
            _ => return None,
        }
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    (key.family() == family).then_some(key)
}
