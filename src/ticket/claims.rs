//! The claims a ticket carries: the [`Claims`] type, its builders, the strict reader
//! that turns a claims object into it, and the exact object the signer writes.
//!
//! Required claims must be present, every known claim must have its exact type, and
//! unknown claims are ignored (so engines can add their own). Claims at their default
//! are left out when signing, so a ticket carries only what it means.

use super::error::{shown, TicketError};
use super::host::host_problem;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::fmt;
use std::str::FromStr;

/// Largest magnitude of `exp`, `nbf` and `iat`: 2^53 − 1, the largest integer every
/// JSON reader holds exactly (JavaScript and many Java and Go decoders read numbers as
/// doubles). A bigger value could mean different times to the signer and to us, and it
/// keeps `exp + leeway` far from `i64` overflow. It is 285 million years either side
/// of 1970, so no honest ticket comes near it.
pub const MAX_TIME_ABS: i64 = (1 << 53) - 1;

/// Which client the console page runs (`kind` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Vnc,
    Spice,
    Serial,
}

impl Kind {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vnc => "vnc",
            Kind::Spice => "spice",
            Kind::Serial => "serial",
        }
    }
}

impl FromStr for Kind {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, TicketError> {
        match s {
            "vnc" => Ok(Kind::Vnc),
            "spice" => Ok(Kind::Spice),
            "serial" => Ok(Kind::Serial),
            other => Err(TicketError::UnknownKind {
                value: shown(other),
            }),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the proxy talks to the console server (`tls` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetTls {
    #[default]
    None,
    Tls,
    Vencrypt,
}

impl TargetTls {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetTls::None => "none",
            TargetTls::Tls => "tls",
            TargetTls::Vencrypt => "vencrypt",
        }
    }
}

impl FromStr for TargetTls {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, TicketError> {
        match s {
            "none" => Ok(TargetTls::None),
            "tls" => Ok(TargetTls::Tls),
            "vencrypt" => Ok(TargetTls::Vencrypt),
            other => Err(TicketError::UnknownTls {
                value: shown(other),
            }),
        }
    }
}

impl fmt::Display for TargetTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a ticket, as signed.
///
/// Serializes to the ticket's claims object: `aud` as a string when there is one, an
/// array when several, absent when none; `kind`, `tls`, `view` and `rec` absent at
/// their defaults, so a ticket that uses none of them signs the same bytes as before
/// they existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub host: String,
    pub port: u16,
    pub exp: i64,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    /// Empty when the ticket names no audience.
    pub aud: Vec<String>,
    pub jti: Option<String>,
    pub sub: Option<String>,
    pub kind: Kind,
    pub tls: TargetTls,
    /// View only: the proxy forwards no input from the browser to the console.
    pub view: bool,
    /// Record the session; a proxy that cannot record it must refuse it.
    pub rec: bool,
}

impl Claims {
    /// Claims for `host:port` usable until `exp` (Unix seconds).
    pub fn new(host: impl Into<String>, port: u16, exp: i64) -> Self {
        Claims {
            host: host.into(),
            port,
            exp,
            nbf: None,
            iat: None,
            aud: Vec::new(),
            jti: None,
            sub: None,
            kind: Kind::Vnc,
            tls: TargetTls::None,
            view: false,
            rec: false,
        }
    }
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }
    /// Adds one audience; call again for several.
    pub fn with_aud(mut self, aud: impl Into<String>) -> Self {
        self.aud.push(aud.into());
        self
    }
    pub fn with_jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }
    pub fn with_nbf(mut self, nbf: i64) -> Self {
        self.nbf = Some(nbf);
        self
    }
    pub fn with_iat(mut self, iat: i64) -> Self {
        self.iat = Some(iat);
        self
    }
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }
    pub fn with_tls(mut self, tls: TargetTls) -> Self {
        self.tls = tls;
        self
    }
    pub fn with_view(mut self, view: bool) -> Self {
        self.view = view;
        self
    }
    pub fn with_rec(mut self, rec: bool) -> Self {
        self.rec = rec;
        self
    }

    /// Checks the claims the way [`verify`](super::verify) would read them back, so a
    /// signer can refuse to issue a ticket every proxy would refuse (a host with a port
    /// in it, port 0, a time beyond ±(2^53 − 1)).
    pub fn validate(&self) -> Result<(), TicketError> {
        check_host(&self.host)?;
        if self.port == 0 {
            return Err(TicketError::PortOutOfRange { port: 0 });
        }
        check_time("exp", self.exp)?;
        if let Some(nbf) = self.nbf {
            check_time("nbf", nbf)?;
        }
        if let Some(iat) = self.iat {
            check_time("iat", iat)?;
        }
        Ok(())
    }

    /// The claims object exactly as it is signed (keys in sorted order).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("host".into(), Value::from(self.host.as_str()));
        m.insert("port".into(), Value::from(self.port));
        m.insert("exp".into(), Value::from(self.exp));
        if let Some(nbf) = self.nbf {
            m.insert("nbf".into(), Value::from(nbf));
        }
        if let Some(iat) = self.iat {
            m.insert("iat".into(), Value::from(iat));
        }
        match self.aud.as_slice() {
            [] => {}
            [one] => {
                m.insert("aud".into(), Value::from(one.as_str()));
            }
            several => {
                m.insert("aud".into(), Value::from(several.to_vec()));
            }
        }
        if let Some(jti) = &self.jti {
            m.insert("jti".into(), Value::from(jti.as_str()));
        }
        if let Some(sub) = &self.sub {
            m.insert("sub".into(), Value::from(sub.as_str()));
        }
        if self.kind != Kind::default() {
            m.insert("kind".into(), Value::from(self.kind.as_str()));
        }
        if self.tls != TargetTls::default() {
            m.insert("tls".into(), Value::from(self.tls.as_str()));
        }
        if self.view {
            m.insert("view".into(), Value::Bool(true));
        }
        if self.rec {
            m.insert("rec".into(), Value::Bool(true));
        }
        Value::Object(m)
    }

    /// Reads a claims object strictly: required claims present, every known claim of
    /// its exact type, unknown claims ignored.
    pub(super) fn from_object(m: &Map<String, Value>) -> Result<Claims, TicketError> {
        let host = match m.get("host") {
            None => return Err(TicketError::MissingClaim { claim: "host" }),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "host",
                    expected: "a string",
                })
            }
        };
        check_host(&host)?;
        let port = match m.get("port") {
            None => return Err(TicketError::MissingClaim { claim: "port" }),
            Some(Value::Number(n)) => port_from(n)?,
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "port",
                    expected: "an integer 1..65535",
                })
            }
        };
        let exp = match m.get("exp") {
            None => return Err(TicketError::MissingClaim { claim: "exp" }),
            Some(v) => time_from("exp", v)?,
        };
        let nbf = m.get("nbf").map(|v| time_from("nbf", v)).transpose()?;
        let iat = m.get("iat").map(|v| time_from("iat", v)).transpose()?;
        let aud = match m.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(aud_type()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(aud_type()),
        };
        let jti = optional_string(m, "jti")?;
        let sub = optional_string(m, "sub")?;
        let kind = match m.get("kind") {
            None => Kind::default(),
            Some(Value::String(s)) => s.parse()?,
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "kind",
                    expected: "a string",
                })
            }
        };
        let tls = match m.get("tls") {
            None => TargetTls::default(),
            Some(Value::String(s)) => s.parse()?,
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "tls",
                    expected: "a string",
                })
            }
        };
        let view = optional_bool(m, "view")?;
        let rec = optional_bool(m, "rec")?;
        Ok(Claims {
            host,
            port,
            exp,
            nbf,
            iat,
            aud,
            jti,
            sub,
            kind,
            tls,
            view,
            rec,
        })
    }
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

fn aud_type() -> TicketError {
    TicketError::ClaimType {
        claim: "aud",
        expected: "a string or an array of strings",
    }
}

fn optional_string(
    m: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, TicketError> {
    match m.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TicketError::ClaimType {
            claim,
            expected: "a string",
        }),
    }
}

/// The `host` claim within the grammar of [`host_problem`].
fn check_host(host: &str) -> Result<(), TicketError> {
    host_problem(host).map_or(Ok(()), |problem| {
        Err(TicketError::BadHost {
            host: shown(host),
            problem,
        })
    })
}

/// A claim that is `true` or `false` and defaults to `false`. Only the JSON literals
/// count; `"true"`, `1` or `null` are refused rather than guessed at, since an engine
/// that wrote `"view":"false"` and a reader that took any non-empty string as true
/// would disagree on whether the session is view only.
fn optional_bool(m: &Map<String, Value>, claim: &'static str) -> Result<bool, TicketError> {
    match m.get(claim) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(TicketError::ClaimType {
            claim,
            expected: "true or false",
        }),
    }
}

fn port_from(n: &Number) -> Result<u16, TicketError> {
    if let Some(i) = n.as_i64() {
        return u16::try_from(i)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(TicketError::PortOutOfRange { port: i });
    }
    if n.as_u64().is_some() {
        return Err(TicketError::PortOutOfRange { port: i64::MAX });
    }
    Err(TicketError::ClaimType {
        claim: "port",
        expected: "an integer 1..65535",
    })
}

/// A NumericDate claim: a JSON integer (not a string, not `1.0`, not `1e9`) within
/// ±[`MAX_TIME_ABS`].
fn time_from(claim: &'static str, v: &Value) -> Result<i64, TicketError> {
    let n = match v {
        Value::Number(n) => n,
        _ => {
            return Err(TicketError::ClaimType {
                claim,
                expected: "an integer number of seconds since 1970",
            })
        }
    };
    if let Some(i) = n.as_i64() {
        check_time(claim, i)?;
        return Ok(i);
    }
    if n.as_u64().is_some() {
        return Err(TicketError::TimeOutOfRange { claim });
    }
    // A float: serde_json reads fractions, exponents and integers too big for 64 bits
    // as f64. Tell the huge apart from the fractional, so the reason reads true.
    match n.as_f64() {
        Some(f) if f.abs() > MAX_TIME_ABS as f64 => Err(TicketError::TimeOutOfRange { claim }),
        _ => Err(TicketError::TimeNotInteger { claim }),
    }
}

fn check_time(claim: &'static str, t: i64) -> Result<(), TicketError> {
    if t.checked_abs().is_some_and(|a| a <= MAX_TIME_ABS) {
        Ok(())
    } else {
        Err(TicketError::TimeOutOfRange { claim })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::Signer;
    use super::*;

    #[test]
    fn default_kind_and_tls_and_absent_claims_are_omitted() {
        let t = Signer::new(key()).sign(&claims());
        let c = unb64(t.split('.').nth(1).unwrap());
        assert_eq!(
            c,
            format!(r#"{{"exp":{},"host":"10.0.0.5","port":5900}}"#, NOW + 120)
        );
    }

    #[test]
    fn one_audience_is_a_string_and_several_are_an_array() {
        let one = claims().with_aud("a").to_json();
        assert_eq!(one["aud"], Value::from("a"));
        let two = claims().with_aud("a").with_aud("b").to_json();
        assert_eq!(two["aud"], serde_json::json!(["a", "b"]));
        let v = check(&forge_claims(&format!(
            r#"{{"host":"h.example","port":1,"exp":{},"aud":"a"}}"#,
            NOW + 1
        )))
        .unwrap();
        assert_eq!(v.claims.aud, vec!["a".to_owned()]);
    }

    #[test]
    fn unknown_claims_are_ignored() {
        let t = forge_claims(&format!(
            r#"{{"host":"10.0.0.5","port":5900,"exp":{},"vm":{{"id":7}},"extra":[1,2]}}"#,
            NOW + 120
        ));
        assert_eq!(check(&t).unwrap().claims, claims());
    }

    #[test]
    fn each_missing_required_claim_is_named() {
        for (c, claim) in [
            (r#"{"port":1,"exp":1}"#, "host"),
            (r#"{"host":"a.example","exp":1}"#, "port"),
            (r#"{"host":"a.example","port":1}"#, "exp"),
        ] {
            assert_eq!(
                refused(&forge_claims(c)),
                TicketError::MissingClaim { claim }
            );
        }
    }

    fn with_exp(exp: &str) -> TicketError {
        refused(&forge_claims(&format!(
            r#"{{"host":"a.example","port":1,"exp":{exp}}}"#
        )))
    }

    #[test]
    fn exp_as_a_string_is_refused() {
        let err = with_exp(&format!(r#""{}""#, NOW + 60));
        assert!(
            matches!(err, TicketError::ClaimType { claim: "exp", .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn exp_as_a_float_or_with_an_exponent_is_refused() {
        assert_eq!(
            with_exp(&format!("{}.0", NOW + 60)),
            TicketError::TimeNotInteger { claim: "exp" }
        );
        assert_eq!(
            with_exp(&format!("{}.5", NOW + 60)),
            TicketError::TimeNotInteger { claim: "exp" }
        );
        assert_eq!(
            with_exp("1.7e9"),
            TicketError::TimeNotInteger { claim: "exp" }
        );
    }

    #[test]
    fn exp_1e300_and_huge_integers_are_out_of_range() {
        for exp in [
            "1e300",
            "9007199254740992",
            "-9007199254740992",
            "9223372036854775807",
            "18446744073709551615",
            "123456789012345678901234567890",
        ] {
            assert_eq!(
                with_exp(exp),
                TicketError::TimeOutOfRange { claim: "exp" },
                "{exp}"
            );
        }
    }

    #[test]
    fn nbf_and_iat_are_read_as_strictly_as_exp() {
        let c = |extra: &str| {
            forge_claims(&format!(
                r#"{{"host":"a.example","port":1,"exp":{},{extra}}}"#,
                NOW + 60
            ))
        };
        assert!(matches!(
            refused(&c(r#""nbf":"0""#)),
            TicketError::ClaimType { claim: "nbf", .. }
        ));
        assert_eq!(
            refused(&c(r#""iat":1.5"#)),
            TicketError::TimeNotInteger { claim: "iat" }
        );
        assert_eq!(
            refused(&c(r#""nbf":1e300"#)),
            TicketError::TimeOutOfRange { claim: "nbf" }
        );
    }

    fn with_port(port: &str) -> TicketError {
        refused(&forge_claims(&format!(
            r#"{{"host":"a.example","port":{port},"exp":{NOW}}}"#
        )))
    }

    #[test]
    fn port_as_a_string_zero_or_70000_is_refused() {
        assert!(matches!(
            with_port(r#""5900""#),
            TicketError::ClaimType { claim: "port", .. }
        ));
        assert_eq!(with_port("0"), TicketError::PortOutOfRange { port: 0 });
        assert_eq!(
            with_port("70000"),
            TicketError::PortOutOfRange { port: 70000 }
        );
        assert_eq!(with_port("-1"), TicketError::PortOutOfRange { port: -1 });
        assert!(matches!(
            with_port("5900.0"),
            TicketError::ClaimType { claim: "port", .. }
        ));
        assert_eq!(
            with_port("70000").to_string(),
            "ticket port 70000 is outside 1..65535"
        );
    }

    #[test]
    fn a_host_that_is_not_a_string_is_refused() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":10,"port":5900,"exp":{NOW}}}"#
        )));
        assert!(matches!(err, TicketError::ClaimType { claim: "host", .. }));
    }

    #[test]
    fn unknown_kind_and_tls_values_are_refused_by_name() {
        let c = |extra: &str| {
            forge_claims(&format!(
                r#"{{"host":"a.example","port":1,"exp":{NOW},{extra}}}"#
            ))
        };
        assert_eq!(
            refused(&c(r#""kind":"rdp""#)),
            TicketError::UnknownKind {
                value: "rdp".into()
            }
        );
        assert_eq!(
            refused(&c(r#""tls":"ssl""#)),
            TicketError::UnknownTls {
                value: "ssl".into()
            }
        );
        assert_eq!(
            refused(&c(r#""tls":"TLS""#)),
            TicketError::UnknownTls {
                value: "TLS".into()
            }
        );
        assert!(matches!(
            refused(&c(r#""kind":1"#)),
            TicketError::ClaimType { claim: "kind", .. }
        ));
        assert!(refused(&c(r#""tls":"ssl""#)).to_string().contains("ssl"));
    }

    #[test]
    fn aud_jti_and_sub_of_the_wrong_type_are_refused() {
        let c = |extra: &str| {
            forge_claims(&format!(
                r#"{{"host":"a.example","port":1,"exp":{NOW},{extra}}}"#
            ))
        };
        for (extra, claim) in [
            (r#""aud":5"#, "aud"),
            (r#""aud":["a",1]"#, "aud"),
            (r#""jti":5"#, "jti"),
            (r#""sub":null"#, "sub"),
        ] {
            let err = refused(&c(extra));
            assert!(
                matches!(err, TicketError::ClaimType { claim: c, .. } if c == claim),
                "{err:?}"
            );
        }
    }

    #[test]
    fn validate_refuses_claims_no_proxy_would_accept() {
        assert!(claims().validate().is_ok());
        assert_eq!(
            Claims::new("h.example", 0, NOW).validate(),
            Err(TicketError::PortOutOfRange { port: 0 })
        );
        assert_eq!(
            Claims::new("10.0.0.1:22", 1, NOW)
                .validate()
                .unwrap_err()
                .code(),
            "bad_host"
        );
        assert_eq!(
            Claims::new("h.example", 1, i64::MAX)
                .validate()
                .unwrap_err()
                .code(),
            "time_out_of_range"
        );
    }

    #[test]
    fn kind_and_tls_parse_their_own_names_only() {
        for k in [Kind::Vnc, Kind::Spice, Kind::Serial] {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        for t in [TargetTls::None, TargetTls::Tls, TargetTls::Vencrypt] {
            assert_eq!(t.as_str().parse::<TargetTls>(), Ok(t));
        }
        assert!("VNC".parse::<Kind>().is_err());
    }

    #[test]
    fn view_and_rec_are_signed_only_when_true() {
        // At false they are left out, so a ticket that uses neither signs exactly the
        // bytes it signed before the claims existed.
        let plain = Signer::new(key()).sign(&claims());
        let explicit = Signer::new(key()).sign(&claims().with_view(false).with_rec(false));
        assert_eq!(plain, explicit);
        let t = Signer::new(key()).sign(&claims().with_view(true).with_rec(true));
        assert_eq!(
            unb64(t.split('.').nth(1).unwrap()),
            format!(
                r#"{{"exp":{},"host":"10.0.0.5","port":5900,"rec":true,"view":true}}"#,
                NOW + 120
            )
        );
        let view_only = claims().with_view(true).to_json();
        assert_eq!(view_only["view"], Value::Bool(true));
        assert!(view_only.get("rec").is_none());
    }

    #[test]
    fn a_ticket_without_view_or_rec_reads_both_as_false() {
        let v = check(&forge_claims(&good_claims())).unwrap();
        assert!(!v.claims.view && !v.claims.rec);
        assert_eq!(v.claims, claims());
    }

    #[test]
    fn view_and_rec_are_read_as_written_true_or_false() {
        let c = |extra: &str| {
            check(&forge_claims(&format!(
                r#"{{"host":"10.0.0.5","port":5900,"exp":{},{extra}}}"#,
                NOW + 120
            )))
            .unwrap()
            .claims
        };
        for (extra, view, rec) in [
            (r#""view":true"#, true, false),
            (r#""rec":true"#, false, true),
            (r#""view":true,"rec":true"#, true, true),
            (r#""view":false,"rec":false"#, false, false),
            (r#""view":false,"rec":true"#, false, true),
        ] {
            let got = c(extra);
            assert_eq!((got.view, got.rec), (view, rec), "{extra}");
        }
    }

    #[test]
    fn view_or_rec_that_is_not_a_json_boolean_is_refused_by_name() {
        for claim in ["view", "rec"] {
            for value in [
                r#""true""#,
                r#""false""#,
                "1",
                "0",
                "null",
                "[true]",
                r#"{"on":true}"#,
            ] {
                let err = refused(&forge_claims(&format!(
                    r#"{{"host":"10.0.0.5","port":5900,"exp":{},"{claim}":{value}}}"#,
                    NOW + 120
                )));
                assert_eq!(
                    err,
                    TicketError::ClaimType {
                        claim,
                        expected: "true or false"
                    },
                    "{claim}: {value}"
                );
                assert_eq!((err.status(), err.code()), (400, "bad_claim_type"));
                assert_eq!(
                    err.to_string(),
                    format!("ticket claim {claim} must be true or false")
                );
            }
        }
    }

    #[test]
    fn view_or_rec_given_twice_is_refused_even_with_one_value() {
        for claim in ["view", "rec"] {
            for (first, second) in [("false", "true"), ("true", "false"), ("true", "true")] {
                let err = refused(&forge_claims(&format!(
                    r#"{{"host":"10.0.0.5","port":5900,"exp":{},"{claim}":{first},"{claim}":{second}}}"#,
                    NOW + 120
                )));
                assert_eq!(
                    err,
                    TicketError::DuplicateKey {
                        part: super::super::Part::Claims,
                        key: claim.into()
                    }
                );
            }
        }
    }
}
