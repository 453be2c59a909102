//! Ticket segments in canonical base64url, and nothing else.
//!
//! One ticket must have one spelling: a replay record keyed by the ticket text, or a
//! second parser, must never see two tickets where there is one.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use std::fmt;

/// Base64url as RFC 7515 requires it, and only in its canonical spelling: no `=`
/// padding, no `+` or `/`, and no set bits after the last whole byte. Each of those
/// would let one ticket be written several ways, which defeats replay records keyed
/// by the ticket text and invites parser differentials.
pub(super) const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The bytes of one segment, or why it is not canonical base64url.
pub(super) fn decode(segment: &str) -> Result<Vec<u8>, Base64Problem> {
    B64.decode(segment).map_err(Base64Problem::from)
}

/// Why a segment is not canonical base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Problem {
    Padding,
    StandardAlphabet,
    BadCharacter,
    Length,
    TrailingBits,
}

impl fmt::Display for Base64Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Base64Problem::Padding => "it has = padding",
            Base64Problem::StandardAlphabet => "it uses + or / (standard base64, not base64url)",
            Base64Problem::BadCharacter => "it has a character outside A-Z a-z 0-9 - _",
            Base64Problem::Length => "its length is impossible for base64",
            Base64Problem::TrailingBits => "its last character has bits set beyond the data",
        })
    }
}

impl From<base64::DecodeError> for Base64Problem {
    fn from(e: base64::DecodeError) -> Self {
        match e {
            base64::DecodeError::InvalidByte(_, b'=') | base64::DecodeError::InvalidPadding => {
                Base64Problem::Padding
            }
            base64::DecodeError::InvalidByte(_, b'+' | b'/') => Base64Problem::StandardAlphabet,
            base64::DecodeError::InvalidByte(..) => Base64Problem::BadCharacter,
            base64::DecodeError::InvalidLength(_) => Base64Problem::Length,
            base64::DecodeError::InvalidLastSymbol(..) => Base64Problem::TrailingBits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Part, Signer, TicketError};
    use super::*;

    #[test]
    fn padding_in_a_segment_is_refused() {
        let t = Signer::new(key()).sign(&claims());
        let padded = base64::engine::general_purpose::URL_SAFE.encode(header());
        assert!(padded.ends_with('='));
        let err = refused(&with_segment(&t, 0, &padded));
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Header,
                problem: Base64Problem::Padding
            }
        );
    }

    #[test]
    fn the_standard_base64_alphabet_is_refused() {
        let err = refused("e3+9.e30.e30");
        let problem = Base64Problem::StandardAlphabet;
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Header,
                problem
            }
        );
        let err = refused("e30.e3/9.e30");
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Claims,
                problem
            }
        );
    }

    #[test]
    fn non_zero_trailing_bits_are_refused() {
        // "e30" is "{}"; "e31" decodes to the same bytes with a stray bit set.
        let problem = Base64Problem::TrailingBits;
        assert_eq!(
            refused("e31.e30.e30"),
            TicketError::Base64 {
                part: Part::Header,
                problem
            }
        );
        // The same trick on a valid signature would give one ticket two spellings.
        let t = Signer::new(key()).sign(&claims());
        let sig = t.rsplit('.').next().unwrap();
        let last = sig.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.find(last).unwrap();
        let twin = alphabet.chars().nth(index | 1).unwrap();
        assert_ne!(last, twin);
        let respelled = format!("{}{twin}", &sig[..sig.len() - 1]);
        let err = refused(&with_segment(&t, 2, &respelled));
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Signature,
                problem
            }
        );
    }

    #[test]
    fn characters_outside_base64url_are_refused() {
        let t = Signer::new(key()).sign(&claims());
        let err = refused(&format!("{t}\n"));
        let problem = Base64Problem::BadCharacter;
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Signature,
                problem
            }
        );
        assert_eq!(
            refused("e30!.e30.e30"),
            TicketError::Base64 {
                part: Part::Header,
                problem
            }
        );
    }
}
