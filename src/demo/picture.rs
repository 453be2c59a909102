//! The demo picture: a static test pattern (colour bars, a grey ramp, a grid and the
//! title) plus a live overlay (a clock, the last keys typed, with named keys and
//! combinations such as `[Ctrl+Alt+Del]`, the pointer position and marker, and the
//! last clipboard text received), and the bookkeeping of what the client has already
//! been sent, so incremental updates carry only the pixels that changed.
//!
//! The end-to-end tests read the keys, pointer and clipboard lines back from the
//! canvas (tests/e2e/lib/demo.mjs mirrors the positions, scales and colours below).

use std::collections::VecDeque;
use std::sync::OnceLock;

use super::font::{self, ADVANCE, GLYPH_WIDTH};
use super::keysym::{Echo, KeyEcho};

/// Framebuffer width in pixels.
pub(super) const WIDTH: u16 = 800;
/// Framebuffer height in pixels.
pub(super) const HEIGHT: u16 = 600;

const W: usize = WIDTH as usize;
const H: usize = HEIGHT as usize;

/// Rows compared as one unit when looking for changes: small enough that a clock tick
/// and a pointer move far apart become separate small rectangles, large enough that a
/// full-screen change is a few dozen rectangles rather than hundreds.
const BAND: usize = 16;

/// Characters per keys line; the keys area has two lines and shows the most recent
/// keys that fit, wrapped at key boundaries.
const KEYS_PER_LINE: usize = 36;
const KEYS_LINES: usize = 2;
/// Keys remembered (more than can ever be shown, so BackSpace can reveal older ones).
const KEYS_KEPT: usize = 128;

/// Where the live text goes; the tests use these to find what changed and to read it.
pub(super) const CLOCK_Y: usize = 390;
pub(super) const KEYS_Y: usize = 436;
const KEYS_X: usize = 22;
const KEYS_LINE_STEP: usize = 30;
const KEYS_SCALE: usize = 3;
const KEYS_COLOUR: u32 = 0xff_ff_7f;
const POINTER_Y: usize = 500;
pub(super) const CLIPBOARD_Y: usize = 526;
const CLIPBOARD_COLOUR: u32 = 0xa0_e0_ff;
/// Characters of clipboard text shown after "clipboard: " (scale 2).
const CLIPBOARD_SHOWN: usize = 52;

/// A value no picture pixel has (bit 24 set), marking pixels the client was never sent.
const NOT_SENT: u32 = 0x0100_0000;

const WHITE: u32 = 0xff_ff_ff;

/// A rectangle of the framebuffer, in RFB's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rect {
    pub(super) x: u16,
    pub(super) y: u16,
    pub(super) w: u16,
    pub(super) h: u16,
}

impl Rect {
    #[cfg(test)]
    pub(super) const FULL: Rect = Rect {
        x: 0,
        y: 0,
        w: WIDTH,
        h: HEIGHT,
    };

    /// The part of `self` inside the framebuffer, or `None` if that is empty.
    pub(super) fn clip(self) -> Option<Rect> {
        let x1 = (u32::from(self.x) + u32::from(self.w)).min(u32::from(WIDTH));
        let y1 = (u32::from(self.y) + u32::from(self.h)).min(u32::from(HEIGHT));
        let (x0, y0) = (u32::from(self.x), u32::from(self.y));
        if x0 >= x1 || y0 >= y1 {
            return None;
        }
        // Every value is at most WIDTH or HEIGHT here, so the conversions are exact.
        Some(Rect {
            x: self.x,
            y: self.y,
            w: (x1 - x0) as u16,
            h: (y1 - y0) as u16,
        })
    }

    /// The smallest rectangle covering both (both must already be clipped).
    pub(super) fn union(self, other: Rect) -> Rect {
        let x0 = self.x.min(other.x);
        let y0 = self.y.min(other.y);
        let x1 = (self.x + self.w).max(other.x + other.w);
        let y1 = (self.y + self.h).max(other.y + other.h);
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    pub(super) fn area(self) -> usize {
        usize::from(self.w) * usize::from(self.h)
    }

    fn columns(self) -> std::ops::Range<usize> {
        usize::from(self.x)..usize::from(self.x) + usize::from(self.w)
    }

    pub(super) fn rows(self) -> std::ops::Range<usize> {
        usize::from(self.y)..usize::from(self.y) + usize::from(self.h)
    }
}

/// One client's view of the demo screen: the live state, the picture drawn from it,
/// and what has been sent.
pub(super) struct Screen {
    /// The most recent keys typed, oldest first: characters and bracketed names.
    keys: VecDeque<String>,
    /// Held modifiers, to name combinations.
    echo: KeyEcho,
    /// The last clipboard text the client sent (ClientCutText), as it will be shown.
    clipboard: Option<String>,
    /// Last pointer position and button mask, once the client has sent one.
    pointer: Option<(u16, u16, u8)>,
    /// The clock line, recomputed by the session once a second.
    clock: String,
    /// The current picture, `0x00RRGGBB` per pixel, row-major.
    frame: Vec<u32>,
    /// Set when the state changed and `frame` must be redrawn before use.
    stale: bool,
    /// What the client has been sent, or `NOT_SENT`; diffed against `frame`.
    sent: Vec<u32>,
}

impl Screen {
    pub(super) fn new(clock: String) -> Self {
        Screen {
            keys: VecDeque::new(),
            echo: KeyEcho::default(),
            clipboard: None,
            pointer: None,
            clock,
            frame: background().to_vec(),
            stale: true,
            sent: vec![NOT_SENT; W * H],
        }
    }

    /// Records a key event: characters and named keys are shown, a plain BackSpace
    /// removes the last one.
    pub(super) fn key_event(&mut self, keysym: u32, down: bool) {
        match self.echo.event(keysym, down) {
            Some(Echo::Show(token)) => {
                self.keys.push_back(token);
                if self.keys.len() > KEYS_KEPT {
                    self.keys.pop_front();
                }
            }
            Some(Echo::Erase) => {
                if self.keys.pop_back().is_none() {
                    return;
                }
            }
            None => return,
        }
        self.stale = true;
    }

    /// Records clipboard text from the client: RFB's ClientCutText is Latin-1.
    pub(super) fn clipboard_received(&mut self, latin1: &[u8]) {
        let text: String = latin1
            .iter()
            .map(|&b| match char::from(b) {
                c if c.is_control() => ' ',
                c => c,
            })
            .take(CLIPBOARD_SHOWN)
            .collect();
        self.clipboard = Some(text);
        self.stale = true;
    }

    /// The keys area's lines: the newest keys that fit, wrapped at key boundaries.
    fn key_lines(&self) -> Vec<String> {
        let tokens: Vec<String> = self
            .keys
            .iter()
            .map(|t| t.chars().take(KEYS_PER_LINE).collect())
            .collect();
        let mut first = 0;
        loop {
            let lines = wrap(&tokens[first..], KEYS_PER_LINE);
            if lines.len() <= KEYS_LINES || first + 1 >= tokens.len() {
                return lines;
            }
            first += 1;
        }
    }

    pub(super) fn pointer_moved(&mut self, x: u16, y: u16, buttons: u8) {
        if self.pointer != Some((x, y, buttons)) {
            self.pointer = Some((x, y, buttons));
            self.stale = true;
        }
    }

    pub(super) fn set_clock(&mut self, clock: String) {
        if self.clock != clock {
            self.clock = clock;
            self.stale = true;
        }
    }

    /// The parts of `region` whose pixels differ from what the client was sent.
    pub(super) fn changed_rects(&mut self, region: Rect) -> Vec<Rect> {
        self.render();
        let cols = region.columns();
        let mut out: Vec<Rect> = Vec::new();
        let rows = region.rows();
        let mut band_start = rows.start;
        while band_start < rows.end {
            let band_end = (band_start + BAND).min(rows.end);
            let mut span: Option<(usize, usize)> = None;
            for y in band_start..band_end {
                let now = &self.frame[y * W + cols.start..y * W + cols.end];
                let was = &self.sent[y * W + cols.start..y * W + cols.end];
                if let Some(first) = now.iter().zip(was).position(|(a, b)| a != b) {
                    let last = now
                        .iter()
                        .zip(was)
                        .rposition(|(a, b)| a != b)
                        .unwrap_or(first);
                    let (lo, hi) = span.unwrap_or((usize::MAX, 0));
                    span = Some((lo.min(cols.start + first), hi.max(cols.start + last + 1)));
                }
            }
            if let Some((lo, hi)) = span {
                // Coordinates come from clipped ranges, so they fit in u16.
                let rect = Rect {
                    x: lo as u16,
                    y: band_start as u16,
                    w: (hi - lo) as u16,
                    h: (band_end - band_start) as u16,
                };
                // Merge with the band above when it spans the same columns.
                match out.last_mut() {
                    Some(prev)
                        if prev.x == rect.x && prev.w == rect.w && prev.y + prev.h == rect.y =>
                    {
                        prev.h += rect.h;
                    }
                    _ => out.push(rect),
                }
            }
            band_start = band_end;
        }
        out
    }

    /// The current pixels of row `y` within `rect`.
    pub(super) fn row(&mut self, rect: Rect, y: usize) -> &[u32] {
        self.render();
        &self.frame[y * W + rect.columns().start..y * W + rect.columns().end]
    }

    /// Records that the client now has `rect` as currently drawn.
    pub(super) fn mark_sent(&mut self, rect: Rect) {
        self.render();
        for y in rect.rows() {
            let span = y * W + rect.columns().start..y * W + rect.columns().end;
            self.sent[span.clone()].copy_from_slice(&self.frame[span]);
        }
    }

    fn render(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let key_lines = self.key_lines();
        let frame = &mut self.frame;
        frame.copy_from_slice(background());

        let clock_width = text_width(&self.clock, 4);
        draw_text(
            frame,
            W.saturating_sub(clock_width) / 2,
            CLOCK_Y,
            4,
            0x7f_ff_7f,
            &self.clock,
        );

        draw_text(frame, KEYS_X, KEYS_Y, KEYS_SCALE, WHITE, "keys:");
        let keys_x = KEYS_X + text_width("keys: ", KEYS_SCALE);
        for (i, line) in key_lines.iter().enumerate() {
            let y = KEYS_Y + i * KEYS_LINE_STEP;
            draw_text(frame, keys_x, y, KEYS_SCALE, KEYS_COLOUR, line);
        }

        if let Some(text) = &self.clipboard {
            draw_text(frame, 22, CLIPBOARD_Y, 2, WHITE, "clipboard:");
            let x = 22 + text_width("clipboard: ", 2);
            draw_text(frame, x, CLIPBOARD_Y, 2, CLIPBOARD_COLOUR, text);
        }

        if let Some((x, y, buttons)) = self.pointer {
            let label = format!("pointer {x},{y} buttons {buttons:08b}");
            draw_text(frame, 22, POINTER_Y, 2, 0xc0_c0_c0, &label);
            draw_marker(frame, usize::from(x), usize::from(y));
        }
    }
}

/// The static part of the picture, drawn once per process and shared by all clients.
fn background() -> &'static [u32] {
    static BACKGROUND: OnceLock<Vec<u32>> = OnceLock::new();
    BACKGROUND.get_or_init(draw_background)
}

fn draw_background() -> Vec<u32> {
    // 75% bars in SMPTE order: grey, yellow, cyan, green, magenta, red, blue.
    const BARS: [u32; 7] = [
        0xbf_bf_bf, 0xbf_bf_00, 0x00_bf_bf, 0x00_bf_00, 0xbf_00_bf, 0xbf_00_00, 0x00_00_bf,
    ];
    // The "castellations" row under them: blue, black, magenta, black, cyan, black, grey.
    const CASTELLATIONS: [u32; 7] = [
        0x00_00_bf, 0x13_13_13, 0xbf_00_bf, 0x13_13_13, 0x00_bf_bf, 0x13_13_13, 0xbf_bf_bf,
    ];
    const BARS_END: usize = 220;
    const CASTELLATIONS_END: usize = 250;
    const RAMP_END: usize = 300;
    const GRID_SPACING: usize = 40;

    let mut frame = vec![0; W * H];
    for y in 0..H {
        for x in 0..W {
            let bar = x * 7 / W;
            frame[y * W + x] = match y {
                _ if y < BARS_END => BARS[bar],
                _ if y < CASTELLATIONS_END => CASTELLATIONS[bar],
                _ if y < RAMP_END => {
                    let level = (x * 255 / (W - 1)) as u32;
                    level * 0x01_01_01
                }
                _ if x % GRID_SPACING == 0 || y % GRID_SPACING == 0 => 0x33_40_5a,
                _ => 0x12_18_28,
            };
        }
    }
    // A one-pixel white border shows whether the client displays the whole screen.
    for x in 0..W {
        frame[x] = WHITE;
        frame[(H - 1) * W + x] = WHITE;
    }
    for y in 0..H {
        frame[y * W] = WHITE;
        frame[y * W + W - 1] = WHITE;
    }

    let title = "consolegate demo";
    draw_text(
        &mut frame,
        (W - text_width(title, 6)) / 2,
        320,
        6,
        WHITE,
        title,
    );
    let hint = "type or move the mouse: input reaches the server";
    draw_text(
        &mut frame,
        (W - text_width(hint, 2)) / 2,
        560,
        2,
        0x9f_9f_9f,
        hint,
    );
    frame
}

/// Lays `tokens` out on lines of at most `width` characters, never splitting one.
fn wrap(tokens: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    for token in tokens {
        let n = token.chars().count();
        if len + n > width && len > 0 {
            lines.push(std::mem::take(&mut line));
            len = 0;
        }
        line.push_str(token);
        len += n;
    }
    if len > 0 {
        lines.push(line);
    }
    lines
}

fn text_width(text: &str, scale: usize) -> usize {
    (text.chars().count() * ADVANCE).saturating_sub(1) * scale
}

/// Draws `text` with its top-left corner at (`x`, `y`); pixels off the screen are skipped.
fn draw_text(frame: &mut [u32], x: usize, y: usize, scale: usize, colour: u32, text: &str) {
    for (i, c) in text.chars().enumerate() {
        let left = x + i * ADVANCE * scale;
        for (row, bits) in font::glyph(c).iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if bits & (1 << (GLYPH_WIDTH - 1 - col)) != 0 {
                    fill(
                        frame,
                        left + col * scale,
                        y + row * scale,
                        scale,
                        scale,
                        colour,
                    );
                }
            }
        }
    }
}

/// A crosshair at the pointer: white with a black outline, so it shows on any colour
/// (inverting the pixels under it would vanish on the grey ramp).
fn draw_marker(frame: &mut [u32], x: usize, y: usize) {
    const ARM: usize = 8;
    // (start, exclusive end) of the white arms; the outline is one pixel wider all round.
    let (x0, x1) = (x.saturating_sub(ARM), x + ARM + 1);
    let (y0, y1) = (y.saturating_sub(ARM), y + ARM + 1);
    let (ox0, oy0) = (x0.saturating_sub(1), y0.saturating_sub(1));
    fill(frame, ox0, y.saturating_sub(1), x1 + 1 - ox0, 3, 0);
    fill(frame, x.saturating_sub(1), oy0, 3, y1 + 1 - oy0, 0);
    fill(frame, x0, y, x1 - x0, 1, WHITE);
    fill(frame, x, y0, 1, y1 - y0, WHITE);
}

fn fill(frame: &mut [u32], x: usize, y: usize, w: usize, h: usize, colour: u32) {
    for row in y..(y + h).min(H) {
        for col in x..(x + w).min(W) {
            frame[row * W + col] = colour;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen() -> Screen {
        let mut screen = Screen::new("00:00:00 UTC".into());
        screen.mark_sent(Rect::FULL);
        screen
    }

    #[test]
    fn a_fresh_screen_has_everything_to_send() {
        let mut screen = Screen::new(String::new());
        let rects = screen.changed_rects(Rect::FULL);
        assert_eq!(rects, [Rect::FULL]);
    }

    #[test]
    fn nothing_changed_means_no_rectangles() {
        assert!(screen().changed_rects(Rect::FULL).is_empty());
    }

    fn press(screen: &mut Screen, keysym: u32) {
        screen.key_event(keysym, true);
        screen.key_event(keysym, false);
    }

    fn shown(screen: &Screen) -> String {
        screen.key_lines().concat()
    }

    #[test]
    fn a_key_press_changes_only_the_keys_line() {
        let mut screen = screen();
        press(&mut screen, u32::from(b'a'));
        let rects = screen.changed_rects(Rect::FULL);
        assert!(!rects.is_empty());
        for r in &rects {
            assert!(
                r.rows().start <= KEYS_Y + 7 * KEYS_SCALE && r.rows().end > KEYS_Y,
                "{r:?}"
            );
            assert!(r.area() < 2000, "{r:?} is larger than one glyph's band");
        }
        screen.mark_sent(Rect::FULL);
        assert!(screen.changed_rects(Rect::FULL).is_empty());
    }

    #[test]
    fn key_ups_and_a_backspace_with_nothing_typed_change_nothing_but_a_lone_shift_shows() {
        let mut screen = screen();
        screen.key_event(u32::from(b'a'), false); // an up without its down
        screen.key_event(0xffe1, true); // Shift_L held: nothing to show yet
        screen.key_event(0xffe1, false); // ... and released alone: shows [Shift]
        assert_eq!(shown(&screen), "[Shift]");
        press(&mut screen, 0xff08);
        screen.mark_sent(Rect::FULL);
        press(&mut screen, 0xff08); // BackSpace with nothing typed
        assert!(screen.changed_rects(Rect::FULL).is_empty());
    }

    #[test]
    fn named_keys_and_combinations_are_shown() {
        let mut screen = screen();
        for k in [0xffe3, 0xffe9, 0xffff] {
            screen.key_event(k, true);
        }
        for k in [0xffff, 0xffe9, 0xffe3] {
            screen.key_event(k, false);
        }
        press(&mut screen, 0xff09);
        press(&mut screen, u32::from(b'x'));
        press(&mut screen, 0xfc);
        assert_eq!(shown(&screen), "[Ctrl+Alt+Del][Tab]xü");
        press(&mut screen, 0xff08);
        assert_eq!(shown(&screen), "[Ctrl+Alt+Del][Tab]x");
    }

    #[test]
    fn the_keys_area_keeps_the_latest_keys_on_two_lines_without_splitting_one() {
        let mut screen = screen();
        for c in "the quick brown fox jumps over the lazy dog".bytes() {
            press(&mut screen, u32::from(c));
        }
        press(&mut screen, 0xffbe); // F1
        for c in "and some more words to push the start out".bytes() {
            press(&mut screen, u32::from(c));
        }
        let lines = screen.key_lines();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.chars().count() <= KEYS_PER_LINE));
        let text = lines.concat();
        assert!(
            text.ends_with("dog[F1]and some more words to push the start out"),
            "{text}"
        );
        assert!(!text.starts_with("the quick"), "{text}");
        // The named key is whole on one line.
        assert!(lines.iter().any(|l| l.contains("[F1]")), "{lines:?}");
    }

    #[test]
    fn clipboard_text_is_shown_as_latin1_with_control_characters_as_spaces() {
        let mut screen = screen();
        screen.clipboard_received(b"Gr\xfc\xdfe\n5 \xa3");
        assert_eq!(screen.clipboard.as_deref(), Some("Grüße 5 £"));
        assert!(!screen.changed_rects(Rect::FULL).is_empty());
    }

    #[test]
    fn the_pointer_marker_is_drawn_even_at_the_corners() {
        for (x, y) in [(0, 0), (WIDTH - 1, HEIGHT - 1), (u16::MAX, u16::MAX)] {
            let mut screen = screen();
            screen.pointer_moved(x, y, 1);
            assert!(!screen.changed_rects(Rect::FULL).is_empty());
        }
    }

    #[test]
    fn changes_outside_the_requested_region_are_not_reported() {
        let mut screen = screen();
        press(&mut screen, u32::from(b'x'));
        let top = Rect {
            x: 0,
            y: 0,
            w: WIDTH,
            h: 100,
        };
        assert!(screen.changed_rects(top).is_empty());
    }

    #[test]
    fn rectangles_are_clipped_to_the_screen() {
        assert_eq!(
            Rect {
                x: 700,
                y: 500,
                w: 500,
                h: 500
            }
            .clip(),
            Some(Rect {
                x: 700,
                y: 500,
                w: 100,
                h: 100
            })
        );
        assert_eq!(
            Rect {
                x: 800,
                y: 0,
                w: 10,
                h: 10
            }
            .clip(),
            None
        );
        assert_eq!(
            Rect {
                x: 0,
                y: 0,
                w: 0,
                h: 10
            }
            .clip(),
            None
        );
        assert_eq!(
            Rect {
                x: u16::MAX,
                y: u16::MAX,
                w: u16::MAX,
                h: u16::MAX
            }
            .clip(),
            None
        );
    }
}
