//! What a key event looks like on the demo screen: the character it types, or a
//! bracketed name such as `[Tab]`, `[F5]` or `[Ctrl+Alt+Del]`, so a person (or a test
//! reading the picture) sees exactly which keys and combinations reached the server.
//!
//! RFB sends X11 keysyms with separate down and up events, modifiers included. The
//! echo keeps which modifiers are held: a key pressed while Ctrl, Alt, Super or AltGr is
//! down shows as a combination; a modifier pressed and released on its own shows by
//! name (`[Super]`), which is how the Windows key reaching the VM becomes visible.

/// The modifiers the echo tracks, in the order a combination names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Modifier {
    Ctrl,
    Alt,
    AltGr,
    Super,
    Shift,
}

impl Modifier {
    const ALL: [Modifier; 5] = [
        Modifier::Ctrl,
        Modifier::Alt,
        Modifier::AltGr,
        Modifier::Super,
        Modifier::Shift,
    ];

    fn name(self) -> &'static str {
        match self {
            Modifier::Ctrl => "Ctrl",
            Modifier::Alt => "Alt",
            Modifier::AltGr => "AltGr",
            Modifier::Super => "Super",
            Modifier::Shift => "Shift",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn of(keysym: u32) -> Option<Modifier> {
        match keysym {
            0xffe1 | 0xffe2 => Some(Modifier::Shift),
            0xffe3 | 0xffe4 => Some(Modifier::Ctrl),
            // Meta is what some clients send for Alt (and macOS's Option).
            0xffe7..=0xffea => Some(Modifier::Alt),
            // Super and Hyper, left and right.
            0xffeb..=0xffee => Some(Modifier::Super),
            // ISO_Level3_Shift (AltGr on X11 layouts) and Mode_switch.
            0xfe03 | 0xff7e => Some(Modifier::AltGr),
            _ => None,
        }
    }
}

/// What a key event does to the keys line.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Echo {
    /// Append this token (a character or a bracketed name).
    Show(String),
    /// Remove the last token (a plain BackSpace).
    Erase,
}

/// Held modifiers and the chord being pressed.
#[derive(Debug, Default)]
pub(super) struct KeyEcho {
    /// Modifiers down now, one bit per [`Modifier`].
    held: u8,
    /// Modifiers pressed since the last moment none was held.
    chord: u8,
    /// A non-modifier key was pressed during the current chord.
    used: bool,
}

impl KeyEcho {
    /// A key went down or up; returns what the keys line should show, if anything.
    pub(super) fn event(&mut self, keysym: u32, down: bool) -> Option<Echo> {
        if let Some(m) = Modifier::of(keysym) {
            if down {
                if self.held == 0 {
                    self.chord = 0;
                    self.used = false;
                }
                self.held |= m.bit();
                self.chord |= m.bit();
                return None;
            }
            self.held &= !m.bit();
            if self.held == 0 && self.chord != 0 && !self.used {
                // Pressed and released with nothing in between: show the chord itself.
                let chord = self.chord;
                self.chord = 0;
                return Some(Echo::Show(format!("[{}]", names(chord).join("+"))));
            }
            return None;
        }
        if !down {
            return None;
        }
        self.used = true;
        // Shift is part of the character (RFB sends the shifted keysym); AltGr too.
        let combo = self.held & !(Modifier::Shift.bit() | Modifier::AltGr.bit());
        match (key_name(keysym), typed_char(keysym)) {
            (Some("BackSpace"), _) if self.held == 0 => Some(Echo::Erase),
            (Some(name), _) => {
                // Named keys carry Shift too: Shift+Tab is not Tab.
                let mods = names(self.held & !Modifier::AltGr.bit());
                Some(Echo::Show(bracket(&mods, name)))
            }
            (None, Some(c)) if combo == 0 => Some(Echo::Show(char_token(c))),
            (None, Some(c)) => Some(Echo::Show(bracket(&names(combo), &char_token(c)))),
            (None, None) => Some(Echo::Show(bracket(&names(combo), &format!("0x{keysym:x}")))),
        }
    }
}

fn names(bits: u8) -> Vec<&'static str> {
    Modifier::ALL
        .iter()
        .filter(|m| bits & m.bit() != 0)
        .map(|m| m.name())
        .collect()
}

fn bracket(mods: &[&str], key: &str) -> String {
    let key = key.trim_start_matches('[').trim_end_matches(']');
    if mods.is_empty() {
        format!("[{key}]")
    } else {
        format!("[{}+{key}]", mods.join("+"))
    }
}

/// A character the demo font can draw shows as itself; any other as `[U+XXXX]`.
fn char_token(c: char) -> String {
    if super::font::has_glyph(c) {
        c.to_string()
    } else {
        format!("[U+{:04X}]", u32::from(c))
    }
}

/// The character a keysym types: Latin-1 keysyms are their code points, Unicode
/// keysyms are 0x0100_0000 plus the code point, and the euro sign has its own.
fn typed_char(keysym: u32) -> Option<char> {
    match keysym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
        0x20ac => Some('€'),
        0x0100_00a0..=0x0110_ffff => char::from_u32(keysym - 0x0100_0000),
        _ => None,
    }
}

/// Short names for the keys a console user sends that type no character.
fn key_name(keysym: u32) -> Option<&'static str> {
    const F_KEYS: [&str; 24] = [
        "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12", "F13", "F14",
        "F15", "F16", "F17", "F18", "F19", "F20", "F21", "F22", "F23", "F24",
    ];
    const KEYPAD_DIGITS: [&str; 10] = [
        "KP0", "KP1", "KP2", "KP3", "KP4", "KP5", "KP6", "KP7", "KP8", "KP9",
    ];
    Some(match keysym {
        0xff08 => "BackSpace",
        0xff09 => "Tab",
        0xfe20 => "Tab", // ISO_Left_Tab: Shift+Tab on X11
        0xff0d => "Enter",
        0xff13 => "Pause",
        0xff14 => "ScrollLock",
        0xff15 => "SysRq",
        0xff1b => "Esc",
        0xff50 => "Home",
        0xff51 => "Left",
        0xff52 => "Up",
        0xff53 => "Right",
        0xff54 => "Down",
        0xff55 => "PgUp",
        0xff56 => "PgDn",
        0xff57 => "End",
        0xff61 => "Print",
        0xff63 => "Ins",
        0xff67 => "Menu",
        0xff6b => "Break",
        0xff7f => "NumLock",
        0xff8d => "KPEnter",
        0xffe5 => "CapsLock",
        0xffff => "Del",
        0xffaa => "KP*",
        0xffab => "KP+",
        0xffad => "KP-",
        0xffae => "KP.",
        0xffaf => "KP/",
        0xffb0..=0xffb9 => KEYPAD_DIGITS[(keysym - 0xffb0) as usize],
        0xffbe..=0xffd5 => F_KEYS[(keysym - 0xffbe) as usize],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTRL: u32 = 0xffe3;
    const ALT: u32 = 0xffe9;
    const SHIFT: u32 = 0xffe1;
    const SUPER: u32 = 0xffeb;
    const DELETE: u32 = 0xffff;

    /// Presses each keysym in order and releases them in reverse, as a combination is
    /// typed; returns what was shown.
    fn combo(echo: &mut KeyEcho, keys: &[u32]) -> Vec<Echo> {
        let mut out = Vec::new();
        for &k in keys {
            out.extend(echo.event(k, true));
        }
        for &k in keys.iter().rev() {
            out.extend(echo.event(k, false));
        }
        out
    }

    fn shown(s: &str) -> Echo {
        Echo::Show(s.to_string())
    }

    #[test]
    fn ctrl_alt_del_shows_as_one_combination() {
        let mut echo = KeyEcho::default();
        assert_eq!(
            combo(&mut echo, &[CTRL, ALT, DELETE]),
            [shown("[Ctrl+Alt+Del]")]
        );
    }

    #[test]
    fn named_keys_show_in_brackets_and_shift_counts_for_them() {
        let mut echo = KeyEcho::default();
        assert_eq!(combo(&mut echo, &[0xff09]), [shown("[Tab]")]);
        assert_eq!(combo(&mut echo, &[0xff1b]), [shown("[Esc]")]);
        assert_eq!(combo(&mut echo, &[0xffc2]), [shown("[F5]")]);
        assert_eq!(combo(&mut echo, &[SHIFT, 0xff09]), [shown("[Shift+Tab]")]);
        assert_eq!(
            combo(&mut echo, &[CTRL, ALT, 0xffbf]),
            [shown("[Ctrl+Alt+F2]")]
        );
        assert_eq!(
            combo(&mut echo, &[CTRL, ALT, 0xff08]),
            [shown("[Ctrl+Alt+BackSpace]")]
        );
        assert_eq!(combo(&mut echo, &[ALT, 0xff15]), [shown("[Alt+SysRq]")]);
    }

    #[test]
    fn shifted_characters_show_as_typed_and_ctrl_letters_as_a_combination() {
        let mut echo = KeyEcho::default();
        assert_eq!(combo(&mut echo, &[SHIFT, u32::from(b'A')]), [shown("A")]);
        assert_eq!(
            combo(&mut echo, &[CTRL, u32::from(b'c')]),
            [shown("[Ctrl+c]")]
        );
    }

    #[test]
    fn a_modifier_alone_shows_by_name() {
        let mut echo = KeyEcho::default();
        assert_eq!(combo(&mut echo, &[SUPER]), [shown("[Super]")]);
        assert_eq!(combo(&mut echo, &[CTRL, ALT]), [shown("[Ctrl+Alt]")]);
    }

    #[test]
    fn non_ascii_characters_show_when_the_font_has_them_else_by_code_point() {
        let mut echo = KeyEcho::default();
        assert_eq!(combo(&mut echo, &[0xfc]), [shown("ü")]);
        assert_eq!(combo(&mut echo, &[0x20ac]), [shown("€")]);
        assert_eq!(combo(&mut echo, &[0x0100_00e9]), [shown("é")]);
        assert_eq!(combo(&mut echo, &[0x0100_2713]), [shown("[U+2713]")]);
        assert_eq!(combo(&mut echo, &[0x1234_5678]), [shown("[0x12345678]")]);
    }

    #[test]
    fn plain_backspace_erases_and_key_ups_show_nothing() {
        let mut echo = KeyEcho::default();
        assert_eq!(echo.event(0xff08, true), Some(Echo::Erase));
        assert_eq!(echo.event(0xff08, false), None);
        assert_eq!(echo.event(u32::from(b'a'), false), None);
    }
}
