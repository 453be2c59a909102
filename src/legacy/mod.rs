//! Drop-in acceptance of the credentials other console proxies take, so an existing
//! installation can switch to consolegate without touching its engine:
//! - [`ovirt`]: oVirt engine tickets (`[legacy] ovirt_certificate`), verified strictly;
//! - [`tokenfile`]: websockify token files (`[legacy] token_source`).
//!
//! Both are off by default. Each turns its credential into the same
//! [`Verified`](crate::ticket::Verified) an Ed25519 ticket gives, so target policy,
//! Origin rules, limits and logs apply unchanged. `front` asks [`Legacy::verify`]
//! first; `None` means "not ours: verify it as an Ed25519 ticket".

pub mod ovirt;
pub mod tokenfile;

use crate::ticket::{Claims, Verified, VerifyOptions};
use std::sync::{Arc, RwLock};
use tracing::{info, warn};

/// Credentials of the proxies consolegate replaces (`[legacy]`); all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyConfig {
    /// The engine certificate whose key verifies oVirt tickets; `Some` enables them.
    pub ovirt_certificate: Option<std::path::PathBuf>,
    /// Accept PKCS#1 v1.5 SHA-1 `signature` when `v2_signature` is absent.
    pub ovirt_allow_sha1: bool,
    /// websockify token file or directory; `Some` enables token files.
    pub token_source: Option<std::path::PathBuf>,
}

/// Why a legacy credential source cannot be loaded (start-up or SIGHUP).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Ovirt(#[from] ovirt::LoadError),
    #[error(transparent)]
    Tokens(#[from] tokenfile::LoadError),
}

/// Why a legacy credential is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    #[error(transparent)]
    Ovirt(#[from] ovirt::OvirtError),
    #[error("token is not listed in the websockify token source")]
    UnknownToken,
}

/// The enabled legacy sources of one proxy.
#[derive(Debug, Default)]
pub struct Legacy {
    config: LegacyConfig,
    /// `Some` when oVirt tickets are on: the engine certificate, replaced whole on
    /// SIGHUP, and `None` inside while the last reload could not load it (every oVirt
    /// ticket is refused then: a certificate the operator replaced is never kept).
    ovirt: Option<RwLock<Option<Arc<ovirt::Engine>>>>,
    tokens: Option<tokenfile::TokenSource>,
}

impl Legacy {
    /// Loads what `config` enables and warns about what each one gives up.
    pub fn load(config: &LegacyConfig) -> Result<Legacy, LoadError> {
        let ovirt = match &config.ovirt_certificate {
            Some(path) => {
                let engine = ovirt::Engine::load(path, config.ovirt_allow_sha1)?;
                announce_engine(&engine);
                Some(RwLock::new(Some(Arc::new(engine))))
            }
            None => None,
        };
        let tokens = match &config.token_source {
            Some(path) => {
                let t = tokenfile::TokenSource::load(path)?;
                warn!(
                    source = %path.display(), tokens = t.len(),
                    "websockify token files are on: these tokens are not signed and do not expire; \
                     anyone who learns one reaches its console for as long as it is listed. \
                     Move the engine to Ed25519 tickets (docs/migration.md)"
                );
                Some(t)
            }
            None => None,
        };
        Ok(Legacy {
            config: config.clone(),
            ovirt,
            tokens,
        })
    }

    pub fn ovirt_enabled(&self) -> bool {
        self.ovirt.is_some()
    }

    /// `ovirt:<fingerprint>` of the trusted engine certificate, when enabled.
    pub fn ovirt_kid(&self) -> Option<String> {
        self.engine().map(|e| e.kid().to_string())
    }

    fn engine(&self) -> Option<Arc<ovirt::Engine>> {
        self.ovirt
            .as_ref()
            .and_then(|e| e.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// SIGHUP: re-reads the engine certificate; `None` when oVirt tickets are off. On
    /// an error no certificate is trusted until one loads (fail closed: the operator
    /// may have replaced a compromised one).
    pub fn reload_ovirt(&self) -> Option<Result<(), LoadError>> {
        let (slot, path) = (
            self.ovirt.as_ref()?,
            self.config.ovirt_certificate.as_ref()?,
        );
        let loaded = ovirt::Engine::load(path, self.config.ovirt_allow_sha1);
        let mut slot = slot.write().unwrap_or_else(|p| p.into_inner());
        Some(match loaded {
            Ok(engine) => {
                announce_engine(&engine);
                *slot = Some(Arc::new(engine));
                Ok(())
            }
            Err(e) => {
                *slot = None;
                Err(e.into())
            }
        })
    }

    /// SIGHUP: re-reads the token source; `None` when token files are off. On an error
    /// the previous table stays in force; tokens a successful re-read no longer lists
    /// are withdrawn (see [`Legacy::on_tokens_withdrawn`]).
    pub fn reload_tokens(&self) -> Option<Result<(), LoadError>> {
        let t = self.tokens.as_ref()?;
        Some(t.reload().map(|n| {
            info!(source = %t.source().display(), tokens = n, "reloaded the websockify token source");
        }).map_err(Into::into))
    }

    /// Sets what is told of tokens a re-read of the token source withdrew (no longer
    /// listed, or listed for another console server); nothing without a token source.
    pub fn on_tokens_withdrawn(&self, tell: tokenfile::OnWithdrawn) {
        if let Some(t) = &self.tokens {
            t.on_withdrawn(tell);
        }
    }

    /// Whether `verified`, a token session's ticket, is still listed as it was when it
    /// was admitted; `true` for every other kind of ticket.
    pub fn still_listed(&self, verified: &Verified) -> bool {
        if verified.kid != TOKENFILE_KID {
            return true;
        }
        let (Some(tokens), Some(id)) = (&self.tokens, verified.claims.jti.as_deref()) else {
            return false;
        };
        tokens.lists(id, &verified.claims.host, verified.claims.port)
    }

    /// The whole path as an oVirt ticket, when oVirt tickets are on and the path is one
    /// (standard base64 may contain `/`, so the last segment is not enough).
    pub fn ticket_from_uri(&self, uri: &hyper::Uri) -> Option<String> {
        self.ovirt.as_ref()?;
        ovirt::ticket_from_uri(uri)
    }

    /// Verifies `ticket` when it is a legacy credential; `None` when it is not (an
    /// Ed25519 JWS, or nothing legacy is enabled), for `ticket::verify` to judge.
    pub fn verify(
        &self,
        ticket: &str,
        opts: &VerifyOptions,
        now: i64,
    ) -> Option<Result<Verified, LegacyError>> {
        if let Some(entry) = self.tokens.as_ref().and_then(|t| t.lookup(ticket)) {
            return Some(Ok(token_verified(entry, opts, now)));
        }
        // A compact JWS always has dots; neither base64 nor a listed token needs one.
        if ticket.contains('.') {
            return None;
        }
        match (self.ovirt.is_some(), &self.tokens) {
            (true, None) => Some(self.verify_ovirt(ticket, opts, now)),
            (true, Some(_)) if ovirt::looks_like_ticket(ticket) => {
                Some(self.verify_ovirt(ticket, opts, now))
            }
            (_, Some(_)) => Some(Err(LegacyError::UnknownToken)),
            (false, None) => None,
        }
    }

    /// An oVirt ticket, against the engine certificate in force, if one is.
    fn verify_ovirt(
        &self,
        ticket: &str,
        opts: &VerifyOptions,
        now: i64,
    ) -> Result<Verified, LegacyError> {
        match self.engine() {
            Some(engine) => engine.verify(ticket, opts, now).map_err(Into::into),
            None => Err(ovirt::OvirtError::EngineCertificate {
                kid: "ovirt".into(),
                problem: "it could not be loaded at the last reload".into(),
            }
            .into()),
        }
    }
}

/// The `kid` of every websockify token: the issuer is the token source.
pub const TOKENFILE_KID: &str = "tokenfile";

/// A listed token as the common shape. It has no expiry of its own: `exp` is set to
/// the proxy's maximum lifetime from now only so the claims stay well formed;
/// `jti` is the token's digest ([`tokenfile::token_id`]), never the token nor the
/// line that lists it (a line rewritten with another token is another ticket).
fn token_verified(entry: tokenfile::Entry, opts: &VerifyOptions, now: i64) -> Verified {
    let mut claims = Claims::new(
        entry.host,
        entry.port,
        now.saturating_add(opts.max_lifetime_secs),
    );
    claims.jti = Some(entry.id);
    Verified {
        claims,
        kid: TOKENFILE_KID.into(),
    }
}

fn announce_engine(engine: &ovirt::Engine) {
    let now = crate::util::time::unix_now();
    match engine.validity_problem(now) {
        Some(problem) => {
            warn!(kid = %engine.kid(), problem = %problem, "the oVirt engine certificate is not valid now: every oVirt ticket will be refused")
        }
        None => {
            info!(kid = %engine.kid(), days_left = (engine.not_after() - now) / 86400, "oVirt engine tickets are on")
        }
    }
    if engine.allows_sha1() {
        warn!(kid = %engine.kid(), "legacy.ovirt_allow_sha1 is on: oVirt tickets signed only with RSA PKCS#1 v1.5 SHA-1 are accepted; turn it off once the engine sends v2_signature");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_legacy_is_enabled_by_default_and_every_ticket_goes_to_ed25519() {
        let l = Legacy::load(&LegacyConfig::default()).unwrap();
        assert!(l.verify("abc", &VerifyOptions::default(), 0).is_none());
        assert!(l.verify("a.b.c", &VerifyOptions::default(), 0).is_none());
        assert!(l
            .ticket_from_uri(&"/eyJhIjoxfQ==".parse().unwrap())
            .is_none());
    }

    #[test]
    fn a_listed_token_verifies_and_an_unlisted_one_is_refused_with_401() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one-7"), "tok7: 127.0.0.1:5907\n").unwrap();
        let l = Legacy::load(&LegacyConfig {
            token_source: Some(dir.path().to_path_buf()),
            ..LegacyConfig::default()
        })
        .unwrap();
        let opts = VerifyOptions::default();
        let v = l.verify("tok7", &opts, 1000).unwrap().unwrap();
        assert_eq!((v.claims.host.as_str(), v.claims.port), ("127.0.0.1", 5907));
        assert_eq!(v.kid, "tokenfile");
        assert_eq!(
            v.claims.jti.as_deref(),
            Some(tokenfile::token_id("tok7").as_str())
        );
        let err = l.verify("tok8", &opts, 1000).unwrap().unwrap_err();
        assert_eq!(err, LegacyError::UnknownToken);
        // A JWS still goes to the Ed25519 rules.
        assert!(l.verify("a.b.c", &opts, 1000).is_none());
    }
}
