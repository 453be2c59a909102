//! The strict JSON reader for the header and claims segments.
//!
//! `serde_json` alone would read a duplicated member as its last value; here each
//! segment is decoded, held to a size, and built into a `Value` by a visitor that
//! stops at the first duplicate member at any depth and names it.

use super::error::{shown, Part, TicketError};
use super::limits::MAX_JSON_LEN;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Reads a decoded segment as a JSON object, refusing duplicate members at any depth.
///
/// Duplicates are refused, not resolved: RFC 8259 leaves their meaning open, and
/// readers disagree. `serde_json::Value` and PyJWT (`json.loads`) keep the last one;
/// serde's derived struct deserializers refuse duplicates of the fields they know but
/// silently skip unknown ones. A ticket `{"host":"a","host":"b"}` must not mean one
/// host to the engine's audit log and another to the proxy, so we refuse it outright.
pub(super) fn read_object(part: Part, bytes: &[u8]) -> Result<Map<String, Value>, TicketError> {
    if bytes.len() > MAX_JSON_LEN {
        return Err(TicketError::JsonTooLong {
            part,
            len: bytes.len(),
        });
    }
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TicketError::NotObject { part }),
        Err(e) => match duplicate.into_inner() {
            Some(key) => Err(TicketError::DuplicateKey { part, key }),
            None => Err(TicketError::Json {
                part,
                line: e.line(),
                column: e.column(),
            }),
        },
    }
}

/// Builds a `serde_json::Value`, failing on the first duplicate object member and
/// recording its name (escaped by [`shown`]) for the error.
struct StrictValue<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields a non-finite f64 from text (it refuses 1e400), so the
        // Null branch only exists to avoid a panic path.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue {
            duplicate: self.duplicate,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if m.contains_key(&key) {
                let err = de::Error::custom(format_args!("duplicate member {key:?}"));
                *self.duplicate.borrow_mut() = Some(shown(&key));
                return Err(err);
            }
            let v = map.next_value_seed(StrictValue {
                duplicate: self.duplicate,
            })?;
            m.insert(key, v);
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Part, TicketError, MAX_TICKET_LEN};

    #[test]
    fn a_header_or_claims_over_2048_bytes_is_refused() {
        let big = format!(r#"{{"alg":"EdDSA","pad":"{}"}}"#, "x".repeat(2048));
        let t = forge(&key(), &big, &good_claims());
        assert!(t.len() <= MAX_TICKET_LEN);
        let err = refused(&t);
        assert!(matches!(err, TicketError::JsonTooLong { part: Part::Header, len } if len > 2048));
        let big = format!(
            r#"{{"host":"h.example","port":1,"exp":1,"pad":"{}"}}"#,
            "x".repeat(2048)
        );
        let err = refused(&forge_claims(&big));
        assert!(matches!(
            err,
            TicketError::JsonTooLong {
                part: Part::Claims,
                ..
            }
        ));
    }

    #[test]
    fn a_header_that_is_not_a_json_object_is_refused() {
        let err = refused(&forge(&key(), "not json", &good_claims()));
        assert!(
            matches!(
                err,
                TicketError::Json {
                    part: Part::Header,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = refused(&forge(&key(), r#"["EdDSA"]"#, &good_claims()));
        assert_eq!(err, TicketError::NotObject { part: Part::Header });
        let err = refused(&forge(&key(), r#"{"alg":"EdDSA"} {}"#, &good_claims()));
        assert!(
            matches!(
                err,
                TicketError::Json {
                    part: Part::Header,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn claims_that_are_not_a_json_object_are_refused() {
        assert_eq!(
            refused(&forge_claims("null")),
            TicketError::NotObject { part: Part::Claims }
        );
        assert_eq!(
            refused(&forge_claims(r#""host""#)),
            TicketError::NotObject { part: Part::Claims }
        );
        let err = refused(&forge_claims(r#"{"host":"a","port":1,"exp":1"#));
        assert!(
            matches!(
                err,
                TicketError::Json {
                    part: Part::Claims,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn duplicate_claims_are_refused_rather_than_last_one_wins() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":"a.example","host":"b.example","port":5900,"exp":{}}}"#,
            NOW + 60
        )));
        assert_eq!(
            err,
            TicketError::DuplicateKey {
                part: Part::Claims,
                key: "host".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "ticket claims has the member host more than once"
        );
    }

    #[test]
    fn duplicate_header_members_are_refused() {
        let h = format!(r#"{{"alg":"none","alg":"EdDSA","kid":"{}"}}"#, kid());
        let err = refused(&forge(&key(), &h, &good_claims()));
        assert_eq!(
            err,
            TicketError::DuplicateKey {
                part: Part::Header,
                key: "alg".into()
            }
        );
    }

    #[test]
    fn duplicate_members_nested_inside_unknown_claims_are_refused() {
        let c = format!(
            r#"{{"host":"a.example","port":1,"exp":{},"x":[{{"k":1,"k":2}}]}}"#,
            NOW
        );
        let err = refused(&forge_claims(&c));
        assert_eq!(
            err,
            TicketError::DuplicateKey {
                part: Part::Claims,
                key: "k".into()
            }
        );
    }
}
