//! Following an RFB handshake (RFC 6143 §7.1–7.3) as it passes through the proxy,
//! without taking part in it: which browser bytes are the protocol version, the
//! security-type choice, the VNC authentication response, the ClientInit `shared`
//! flag, and from where on they are client messages.
//!
//! View-only filtering needs to know where client messages start (and the `shared`
//! flag, which it forces to 1); recording needs to know which 16 bytes are the VNC
//! authentication response (a DES encryption of the server's challenge under the
//! password: recorded, it allows an offline guess of the password, so it is redacted).
//!
//! Only the security types the proxy can see through are followed: None (1) and VNC
//! authentication (2). Any other type (VeNCrypt, SASL, Tight, RA2, Apple …) either
//! encrypts the rest of the session or has steps this module does not know, so the
//! caller is told ([`HandshakeError::UnsupportedSecurity`]) and must fail closed.
//!
//! The browser side decides almost everything: its version line picks the protocol
//! version (it may not exceed the server's), and from 3.7 on its one-byte choice picks
//! the security type. Only with RFB 3.3 does the server pick the type, in the four
//! bytes after the version lines, so the server side is read up to there and no
//! further. Both sides answer in turn, so by the time the browser sends a byte that
//! depends on the server's, the proxy has read the server's byte: feeding each
//! direction as it passes keeps the two in step. A browser that speaks out of turn is
//! an error, not a guess.
//!
//! Pure: no I/O, no allocation; bytes may arrive split or coalesced in any way.

use std::fmt;

/// The RFB security types this module can follow.
const SEC_NONE: u32 = 1;
const SEC_VNC_AUTH: u32 = 2;
/// Length of a version line, `RFB xxx.yyy\n`.
const VERSION_LEN: usize = 12;
/// Length of the VNC authentication challenge and response.
const VNC_AUTH_LEN: usize = 16;

/// What a run of browser → console server bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpKind {
    /// The version line and the security-type choice.
    Handshake,
    /// The VNC authentication response: never to be recorded.
    AuthResponse,
    /// ClientInit: exactly one byte, the `shared` flag.
    ClientInit,
    /// Client messages (RFC 6143 §7.5), everything after ClientInit.
    Messages,
}

/// The protocol version the browser chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3_3,
    V3_7,
    V3_8,
}

/// The security type in use, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    None,
    VncAuth,
}

/// Why the handshake cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the console server's RFB version line is not valid")]
    BadServerVersion,
    #[error("the browser's RFB version line is not valid")]
    BadClientVersion,
    #[error(
        "RFB security type {0} cannot be followed by the proxy (only None and VNC \
         authentication can be filtered or recorded)"
    )]
    UnsupportedSecurity(u32),
    #[error("the browser sent RFB data out of turn, before the console server asked for it")]
    OutOfTurn,
    #[error("the console server sent RFB data out of turn")]
    ServerOutOfTurn,
}

/// Where the browser side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
    Version {
        got: usize,
    },
    /// 3.7 and later: the one-byte security-type choice.
    Choice,
    /// 3.3: the server picks the type; nothing more may come until it has.
    AwaitServerType,
    AuthResponse {
        got: usize,
    },
    ClientInit,
    Messages,
}

/// Where the console server side is. Only its version line and, for RFB 3.3, the
/// security type are read; everything after is not this module's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Down {
    Version {
        got: usize,
    },
    /// Version read; waiting for the browser's version to know what comes next.
    AfterVersion,
    /// RFB 3.3: the four-byte security type.
    Type33 {
        got: usize,
    },
    Done,
}

/// Follows one session's RFB handshake. Feed it the console server's bytes with
/// [`Handshake::observe_down`] as they are read, and classify the browser's bytes
/// with [`Handshake::next_up`] before they are written.
#[derive(Clone)]
pub struct Handshake {
    up: Up,
    down: Down,
    client_version: [u8; VERSION_LEN],
    server_version: [u8; VERSION_LEN],
    version: Option<Version>,
    security: Option<Security>,
    type33: [u8; 4],
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("up", &self.up)
            .field("down", &self.down)
            .field("version", &self.version)
            .field("security", &self.security)
            .finish()
    }
}

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}

impl Handshake {
    pub fn new() -> Self {
        Handshake {
            up: Up::Version { got: 0 },
            down: Down::Version { got: 0 },
            client_version: [0; VERSION_LEN],
            server_version: [0; VERSION_LEN],
            version: None,
            security: None,
            type33: [0; 4],
        }
    }

    /// The version the browser chose, once its version line is complete.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The security type, once chosen.
    pub fn security(&self) -> Option<Security> {
        self.security
    }

    /// True once the browser's bytes are client messages.
    pub fn in_messages(&self) -> bool {
        self.up == Up::Messages
    }

    /// Reads console server bytes. Cheap once the interesting part has passed.
    pub fn observe_down(&mut self, mut bytes: &[u8]) -> Result<(), HandshakeError> {
        while !bytes.is_empty() {
            match self.down {
                Down::Done => return Ok(()),
                Down::Version { got } => {
                    let n = (VERSION_LEN - got).min(bytes.len());
                    self.server_version[got..got + n].copy_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if got + n < VERSION_LEN {
                        self.down = Down::Version { got: got + n };
                    } else {
                        parse_version(&self.server_version)
                            .ok_or(HandshakeError::BadServerVersion)?;
                        self.down = Down::AfterVersion;
                        self.advance_down_after_versions();
                    }
                }
                // The server answers the browser's version; it has nothing to say
                // before it.
                Down::AfterVersion => return Err(HandshakeError::ServerOutOfTurn),
                Down::Type33 { got } => {
                    let n = (4 - got).min(bytes.len());
                    self.type33[got..got + n].copy_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if got + n < 4 {
                        self.down = Down::Type33 { got: got + n };
                    } else {
                        self.down = Down::Done;
                        let t = u32::from_be_bytes(self.type33);
                        match t {
                            // 0: the server refuses the connection and says why; the
                            // session ends without the browser sending anything more.
                            0 => {}
                            SEC_NONE => self.set_security(Security::None),
                            SEC_VNC_AUTH => self.set_security(Security::VncAuth),
                            other => return Err(HandshakeError::UnsupportedSecurity(other)),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Classifies the longest prefix of `bytes` that is of one kind and returns the
    /// kind and the prefix's length (at least 1 when `bytes` is not empty). The caller
    /// loops until `bytes` is used up.
    pub fn next_up(&mut self, bytes: &[u8]) -> Result<(UpKind, usize), HandshakeError> {
        if bytes.is_empty() {
            return Ok((self.current_up_kind(), 0));
        }
        match self.up {
            Up::Messages => Ok((UpKind::Messages, bytes.len())),
            Up::Version { got } => {
                let n = (VERSION_LEN - got).min(bytes.len());
                self.client_version[got..got + n].copy_from_slice(&bytes[..n]);
                if got + n < VERSION_LEN {
                    self.up = Up::Version { got: got + n };
                } else {
                    let v = parse_version(&self.client_version)
                        .ok_or(HandshakeError::BadClientVersion)?;
                    self.version = Some(v);
                    self.up = match v {
                        Version::V3_3 => Up::AwaitServerType,
                        Version::V3_7 | Version::V3_8 => Up::Choice,
                    };
                    self.advance_down_after_versions();
                }
                Ok((UpKind::Handshake, n))
            }
            Up::Choice => {
                match u32::from(bytes[0]) {
                    SEC_NONE => self.set_security(Security::None),
                    SEC_VNC_AUTH => self.set_security(Security::VncAuth),
                    other => return Err(HandshakeError::UnsupportedSecurity(other)),
                }
                Ok((UpKind::Handshake, 1))
            }
            Up::AwaitServerType => Err(HandshakeError::OutOfTurn),
            Up::AuthResponse { got } => {
                let n = (VNC_AUTH_LEN - got).min(bytes.len());
                self.up = if got + n < VNC_AUTH_LEN {
                    Up::AuthResponse { got: got + n }
                } else {
                    Up::ClientInit
                };
                Ok((UpKind::AuthResponse, n))
            }
            Up::ClientInit => {
                self.up = Up::Messages;
                Ok((UpKind::ClientInit, 1))
            }
        }
    }

    /// The kind the next browser byte will be, as far as known now.
    fn current_up_kind(&self) -> UpKind {
        match self.up {
            Up::Version { .. } | Up::Choice | Up::AwaitServerType => UpKind::Handshake,
            Up::AuthResponse { .. } => UpKind::AuthResponse,
            Up::ClientInit => UpKind::ClientInit,
            Up::Messages => UpKind::Messages,
        }
    }

    fn set_security(&mut self, s: Security) {
        self.security = Some(s);
        self.up = match s {
            Security::None => Up::ClientInit,
            Security::VncAuth => Up::AuthResponse { got: 0 },
        };
    }

    /// Once both version lines are in, the server's next bytes are known: for 3.3 the
    /// security type, otherwise nothing this module reads.
    fn advance_down_after_versions(&mut self) {
        if self.down != Down::AfterVersion {
            return;
        }
        self.down = match self.version {
            None => Down::AfterVersion,
            Some(Version::V3_3) => Down::Type33 { got: 0 },
            Some(_) => Down::Done,
        };
    }
}

/// `RFB 003.008\n` → the version a client of that line speaks (RFC 6143 §7.1.1: 3.3,
/// 3.7 and 3.8 are the published ones; other minors, as Apple's 3.889, are read as
/// the nearest lower one, as common servers and clients do).
fn parse_version(line: &[u8; VERSION_LEN]) -> Option<Version> {
    let (prefix, rest) = line.split_at(4);
    if prefix != b"RFB " || rest[3] != b'.' || rest[7] != b'\n' {
        return None;
    }
    let digits = |b: &[u8]| -> Option<u32> {
        if !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    };
    let major = digits(&rest[0..3])?;
    let minor = digits(&rest[4..7])?;
    match (major, minor) {
        (3, m) if m >= 8 => Some(Version::V3_8),
        (3, 7) => Some(Version::V3_7),
        (3, _) => Some(Version::V3_3),
        (m, _) if m > 3 => Some(Version::V3_8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `up` in pieces of `step` bytes and returns the (kind, bytes) runs,
    /// merged so that the result does not depend on the split.
    fn classify(h: &mut Handshake, up: &[u8], step: usize) -> Vec<(UpKind, Vec<u8>)> {
        let mut out: Vec<(UpKind, Vec<u8>)> = Vec::new();
        for chunk in up.chunks(step) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let (kind, n) = h.next_up(rest).unwrap();
                assert!(n > 0);
                match out.last_mut() {
                    Some((k, v)) if *k == kind && kind != UpKind::ClientInit => {
                        v.extend_from_slice(&rest[..n])
                    }
                    _ => out.push((kind, rest[..n].to_vec())),
                }
                rest = &rest[n..];
            }
        }
        out
    }

    const V38: &[u8] = b"RFB 003.008\n";
    const V37: &[u8] = b"RFB 003.007\n";
    const V33: &[u8] = b"RFB 003.003\n";

    #[test]
    fn rfb_3_8_with_vnc_authentication_marks_the_response_and_client_init() {
        for step in [1, 3, 16, 1000] {
            let mut h = Handshake::new();
            h.observe_down(V38).unwrap();
            let mut up = V38.to_vec();
            up.push(2); // choice: VNC authentication
            up.extend_from_slice(&[0xAB; 16]); // response
            up.push(0); // ClientInit, exclusive
            up.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61]); // KeyEvent
            let runs = classify(&mut h, &up, step);
            let mut hs = V38.to_vec();
            hs.push(2);
            assert_eq!(
                runs,
                vec![
                    (UpKind::Handshake, hs),
                    (UpKind::AuthResponse, vec![0xAB; 16]),
                    (UpKind::ClientInit, vec![0]),
                    (UpKind::Messages, vec![4, 1, 0, 0, 0, 0, 0, 0x61]),
                ],
                "step {step}"
            );
            assert_eq!(h.security(), Some(Security::VncAuth));
            assert_eq!(h.version(), Some(Version::V3_8));
            assert!(h.in_messages());
        }
    }

    #[test]
    fn rfb_3_8_with_no_authentication_has_no_response() {
        let mut h = Handshake::new();
        h.observe_down(V38).unwrap();
        let mut up = V38.to_vec();
        up.extend_from_slice(&[1, 1, 3, 0, 0, 0, 0, 0, 0, 4, 0]);
        let runs = classify(&mut h, &up, 5);
        assert_eq!(runs[1], (UpKind::ClientInit, vec![1]));
        assert_eq!(runs[2].0, UpKind::Messages);
        assert_eq!(h.security(), Some(Security::None));
    }

    #[test]
    fn rfb_3_7_is_read_like_3_8_on_the_browser_side() {
        let mut h = Handshake::new();
        h.observe_down(V37).unwrap();
        let mut up = V37.to_vec();
        up.extend_from_slice(&[2]);
        up.extend_from_slice(&[7; 16]);
        up.push(1);
        let runs = classify(&mut h, &up, 7);
        assert_eq!(runs[1], (UpKind::AuthResponse, vec![7; 16]));
        assert_eq!(runs[2], (UpKind::ClientInit, vec![1]));
        assert_eq!(h.version(), Some(Version::V3_7));
    }

    #[test]
    fn rfb_3_3_takes_the_security_type_from_the_server() {
        let mut h = Handshake::new();
        h.observe_down(V38).unwrap();
        let (kind, n) = h.next_up(V33).unwrap();
        assert_eq!((kind, n), (UpKind::Handshake, 12));
        // Before the server's type, the browser has nothing to say.
        assert_eq!(h.next_up(&[0; 16]), Err(HandshakeError::OutOfTurn));
        let mut h = Handshake::new();
        h.observe_down(V38).unwrap();
        h.next_up(V33).unwrap();
        // The type arrives split, with the challenge behind it (ignored).
        h.observe_down(&[0, 0]).unwrap();
        h.observe_down(&[0, 2]).unwrap();
        h.observe_down(&[9; 16]).unwrap();
        let runs = classify(&mut h, &[[5u8; 16].as_slice(), &[0]].concat(), 4);
        assert_eq!(
            runs,
            vec![
                (UpKind::AuthResponse, vec![5; 16]),
                (UpKind::ClientInit, vec![0])
            ]
        );
    }

    #[test]
    fn rfb_3_3_with_no_authentication_goes_straight_to_client_init() {
        let mut h = Handshake::new();
        h.observe_down(V33).unwrap();
        h.next_up(V33).unwrap();
        h.observe_down(&[0, 0, 0, 1]).unwrap();
        assert_eq!(h.next_up(&[1, 3]).unwrap(), (UpKind::ClientInit, 1));
        assert_eq!(h.next_up(&[3]).unwrap(), (UpKind::Messages, 1));
    }

    #[test]
    fn other_security_types_cannot_be_followed() {
        let mut h = Handshake::new();
        h.observe_down(V38).unwrap();
        h.next_up(V38).unwrap();
        assert_eq!(
            h.next_up(&[19]),
            Err(HandshakeError::UnsupportedSecurity(19))
        );
        let mut h = Handshake::new();
        h.observe_down(V33).unwrap();
        h.next_up(V33).unwrap();
        assert_eq!(
            h.observe_down(&[0, 0, 0, 16]),
            Err(HandshakeError::UnsupportedSecurity(16))
        );
    }

    #[test]
    fn a_server_refusal_in_3_3_leaves_the_browser_nothing_to_send() {
        let mut h = Handshake::new();
        h.observe_down(V33).unwrap();
        h.next_up(V33).unwrap();
        h.observe_down(&[0, 0, 0, 0, 0, 0, 0, 3, b'n', b'o', b'!'])
            .unwrap();
        assert_eq!(h.security(), None);
        assert_eq!(h.next_up(&[1]), Err(HandshakeError::OutOfTurn));
    }

    #[test]
    fn bad_version_lines_are_refused() {
        for bad in [
            &b"RFB 003.008 "[..],
            b"RFX 003.008\n",
            b"RFB 0x3.008\n",
            b"RFB 003,008\n",
            b"RFB 002.000\n",
            b"RFB +03.008\n",
        ] {
            let mut h = Handshake::new();
            assert_eq!(
                h.next_up(bad),
                Err(HandshakeError::BadClientVersion),
                "{bad:?}"
            );
            let mut h = Handshake::new();
            assert_eq!(
                h.observe_down(bad),
                Err(HandshakeError::BadServerVersion),
                "{bad:?}"
            );
        }
        let mut h = Handshake::new();
        assert_eq!(h.next_up(b"RFB 003.889\n").unwrap().1, 12);
        assert_eq!(h.version(), Some(Version::V3_8));
    }

    #[test]
    fn a_server_speaking_before_the_browsers_version_is_out_of_turn() {
        let mut h = Handshake::new();
        assert_eq!(
            h.observe_down(&[V38, &[1, 2][..]].concat()),
            Err(HandshakeError::ServerOutOfTurn)
        );
    }

    #[test]
    fn the_server_side_is_not_read_after_the_security_type() {
        let mut h = Handshake::new();
        h.observe_down(V38).unwrap();
        h.next_up(V38).unwrap();
        // Types list, challenge, result, ServerInit: none of it matters here.
        h.observe_down(&[1, 2]).unwrap();
        h.observe_down(&[0xFF; 64]).unwrap();
    }
}
