//! Rule 7's record of one use, held by an admission until its session starts.
//!
//! The rule (docs/security.md, "Single use (rule 7)"): a single-use ticket's use is
//! taken when admission checks rule 7, so two requests racing with one ticket cannot
//! both pass, and it is spent only when the ticket's session starts, that is when the
//! relay starts: the browser upgraded and the console server's connection (with its
//! TLS or VeNCrypt after the 101) is established. Whatever fails before that (a port
//! or address outside the policy, DNS, a full proxy, the console server unreachable or
//! its TLS refused, the browser gone before the upgrade) gives the use back, so the
//! person can retry with the same link until it expires. The giving back is this
//! value's `Drop`: no failure path has to remember it.

use crate::policy::{PolicyError, ReplayCache, Uses};
use crate::ticket::Claims;
use std::sync::Arc;

/// One use of a single-use ticket, taken and not yet spent.
#[must_use = "dropping a taken use gives it back at once"]
pub struct SingleUse {
    replay: Arc<ReplayCache>,
    /// The ticket's issuer (key id, oVirt engine, token source): with the `jti`, the
    /// record's key.
    issuer: String,
    jti: String,
    spent: bool,
}

impl SingleUse {
    /// Takes one use of `issuer`'s ticket (a SPICE ticket has one per channel in a
    /// burst), recorded until its `exp` plus `leeway`; refused when it has none left.
    pub fn take(
        replay: &Arc<ReplayCache>,
        issuer: &str,
        claims: &Claims,
        leeway: i64,
        now: i64,
    ) -> Result<SingleUse, PolicyError> {
        let jti = claims.jti.as_deref();
        let until = claims.exp.saturating_add(leeway);
        replay.use_ticket(issuer, jti, Uses::for_kind(claims.kind), until, now)?;
        Ok(SingleUse {
            replay: replay.clone(),
            issuer: issuer.to_string(),
            // `use_ticket` refuses a ticket without a jti.
            jti: jti.unwrap_or_default().to_string(),
            spent: false,
        })
    }

    /// Whether the ticket has a use left, without taking it (the pre-flight check).
    pub fn look(
        replay: &ReplayCache,
        issuer: &str,
        claims: &Claims,
        now: i64,
    ) -> Result<(), PolicyError> {
        replay.check_uses(
            issuer,
            claims.jti.as_deref(),
            Uses::for_kind(claims.kind),
            now,
        )
    }

    /// The session started: the use stays taken until the ticket expires.
    pub fn spend(mut self) {
        self.spent = true;
    }
}

impl Drop for SingleUse {
    fn drop(&mut self) {
        if !self.spent {
            self.replay.forget(&self.issuer, &self.jti);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::Kind;

    fn claims(kind: Kind) -> Claims {
        Claims {
            jti: Some("j1".into()),
            kind,
            ..Claims::new("127.0.0.1", 5901, 1_000)
        }
    }

    #[test]
    fn a_use_is_given_back_unless_spent() {
        let replay = Arc::new(ReplayCache::default());
        let c = claims(Kind::Vnc);
        let taken = SingleUse::take(&replay, "k", &c, 30, 100).unwrap();
        assert!(
            SingleUse::take(&replay, "k", &c, 30, 100).is_err(),
            "taken once"
        );
        drop(taken);
        assert!(SingleUse::look(&replay, "k", &c, 101).is_ok(), "given back");
        SingleUse::take(&replay, "k", &c, 30, 102).unwrap().spend();
        assert_eq!(
            SingleUse::look(&replay, "k", &c, 103),
            Err(PolicyError::Replayed("j1".into()))
        );
    }

    #[test]
    fn a_spice_channel_that_fails_gives_back_only_its_own_use() {
        let replay = Arc::new(ReplayCache::default());
        let c = claims(Kind::Spice);
        let main = SingleUse::take(&replay, "k", &c, 30, 100).unwrap();
        let failed = SingleUse::take(&replay, "k", &c, 30, 100).unwrap();
        main.spend();
        drop(failed);
        let uses: Vec<_> = (0..15)
            .map(|_| SingleUse::take(&replay, "k", &c, 30, 101).unwrap())
            .collect();
        assert!(
            SingleUse::take(&replay, "k", &c, 30, 101).is_err(),
            "16 in all"
        );
        uses.into_iter().for_each(SingleUse::spend);
    }

    #[test]
    fn a_ticket_without_jti_takes_nothing() {
        let replay = Arc::new(ReplayCache::default());
        let c = Claims {
            jti: None,
            ..claims(Kind::Vnc)
        };
        assert!(matches!(
            SingleUse::take(&replay, "k", &c, 30, 100),
            Err(PolicyError::JtiRequired)
        ));
    }
}
