//! RFB pixel formats (RFC 6143 §7.4): the 16-byte wire form, its validation, and the
//! conversion from the picture's 24-bit RGB to whatever layout the client asked for.
//!
//! The demo only speaks true colour; a client asking for a colour map is refused,
//! because every client we care about (noVNC, TigerVNC) asks for true colour.

use thiserror::Error;

/// Why a client's SetPixelFormat was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub(super) enum PixelFormatError {
    #[error("colour-map pixel formats are not supported")]
    NotTrueColour,
    #[error("{0} bits per pixel is not one of 8, 16 or 32")]
    BitsPerPixel(u8),
}

/// A validated pixel format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PixelFormat {
    bits_per_pixel: u8,
    depth: u8,
    big_endian: bool,
    red_max: u16,
    green_max: u16,
    blue_max: u16,
    red_shift: u8,
    green_shift: u8,
    blue_shift: u8,
}

impl PixelFormat {
    /// What ServerInit announces: 32 bpp, depth 24, little-endian, `0x00RRGGBB`.
    pub(super) const SERVER_DEFAULT: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// Parses the 16-byte PIXEL_FORMAT structure.
    ///
    /// Any maxima and shifts are accepted: out-of-range values only produce wrong
    /// colours for the client that asked for them, never a panic here.
    pub(super) fn from_bytes(b: &[u8; 16]) -> Result<Self, PixelFormatError> {
        let [bpp, depth, big_endian, true_colour, rm0, rm1, gm0, gm1, bm0, bm1, rs, gs, bs, ..] =
            *b;
        if true_colour == 0 {
            return Err(PixelFormatError::NotTrueColour);
        }
        if !matches!(bpp, 8 | 16 | 32) {
            return Err(PixelFormatError::BitsPerPixel(bpp));
        }
        Ok(PixelFormat {
            bits_per_pixel: bpp,
            depth,
            big_endian: big_endian != 0,
            red_max: u16::from_be_bytes([rm0, rm1]),
            green_max: u16::from_be_bytes([gm0, gm1]),
            blue_max: u16::from_be_bytes([bm0, bm1]),
            red_shift: rs,
            green_shift: gs,
            blue_shift: bs,
        })
    }

    /// The 16-byte PIXEL_FORMAT structure, as sent in ServerInit.
    pub(super) fn to_bytes(self) -> [u8; 16] {
        let [rm0, rm1] = self.red_max.to_be_bytes();
        let [gm0, gm1] = self.green_max.to_be_bytes();
        let [bm0, bm1] = self.blue_max.to_be_bytes();
        [
            self.bits_per_pixel,
            self.depth,
            u8::from(self.big_endian),
            1, // true colour
            rm0,
            rm1,
            gm0,
            gm1,
            bm0,
            bm1,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
            0,
            0,
            0,
        ]
    }

    pub(super) fn bytes_per_pixel(self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// Appends `rgb` (`0x00RRGGBB`) to `out` in this format.
    pub(super) fn encode(self, rgb: u32, out: &mut Vec<u8>) {
        // Scale each 8-bit channel to the client's maximum, rounding to nearest.
        fn channel(value: u32, max: u16, shift: u8) -> u32 {
            let scaled = ((value & 0xff) * u32::from(max) + 127) / 255;
            // A shift past the pixel's width puts the channel outside it: drop it.
            scaled.checked_shl(u32::from(shift)).unwrap_or(0)
        }
        let mut pixel = channel(rgb >> 16, self.red_max, self.red_shift)
            | channel(rgb >> 8, self.green_max, self.green_shift)
            | channel(rgb, self.blue_max, self.blue_shift);
        if self.bits_per_pixel == 32 {
            // The bits no channel uses are padding, ignored by RFB; set them, because
            // noVNC 1.3 (Debian's) takes them as alpha in a Raw rectangle that arrives
            // in several pieces, and would draw the rest of the screen transparent.
            let used = channel(0xff, self.red_max, self.red_shift)
                | channel(0xff, self.green_max, self.green_shift)
                | channel(0xff, self.blue_max, self.blue_shift);
            pixel |= !used;
        }
        match (self.bits_per_pixel, self.big_endian) {
            (8, _) => out.push(pixel as u8),
            (16, true) => out.extend_from_slice(&(pixel as u16).to_be_bytes()),
            (16, false) => out.extend_from_slice(&(pixel as u16).to_le_bytes()),
            (_, true) => out.extend_from_slice(&pixel.to_be_bytes()),
            (_, false) => out.extend_from_slice(&pixel.to_le_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(format: PixelFormat, rgb: u32) -> Vec<u8> {
        let mut out = Vec::new();
        format.encode(rgb, &mut out);
        out
    }

    /// What noVNC sends: 32 bpp, depth 24, little-endian, red at shift 0.
    const NOVNC: [u8; 16] = [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0];

    #[test]
    fn server_default_round_trips_through_its_wire_form() {
        let bytes = PixelFormat::SERVER_DEFAULT.to_bytes();
        assert_eq!(
            PixelFormat::from_bytes(&bytes),
            Ok(PixelFormat::SERVER_DEFAULT)
        );
        assert_eq!(
            encoded(PixelFormat::SERVER_DEFAULT, 0x12_34_56),
            [0x56, 0x34, 0x12, 0xff]
        );
    }

    #[test]
    fn novnc_format_puts_red_in_the_first_byte() {
        let format = PixelFormat::from_bytes(&NOVNC).unwrap();
        assert_eq!(encoded(format, 0xff_00_00), [0xff, 0, 0, 0xff]);
        assert_eq!(encoded(format, 0x00_80_01), [0, 0x80, 1, 0xff]);
    }

    #[test]
    fn rgb565_big_endian_scales_channels() {
        let format =
            PixelFormat::from_bytes(&[16, 16, 1, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0])
                .unwrap();
        assert_eq!(encoded(format, 0xff_ff_ff), [0xff, 0xff]);
        assert_eq!(encoded(format, 0xff_00_00), [0xf8, 0x00]);
        assert_eq!(encoded(format, 0x00_00_ff), [0x00, 0x1f]);
        assert_eq!(format.bytes_per_pixel(), 2);
    }

    #[test]
    fn bgr233_fits_in_one_byte() {
        let format =
            PixelFormat::from_bytes(&[8, 8, 0, 1, 0, 7, 0, 7, 0, 3, 0, 3, 6, 0, 0, 0]).unwrap();
        assert_eq!(encoded(format, 0xff_ff_ff), [0xff]);
        assert_eq!(encoded(format, 0x00_00_ff), [0xc0]);
    }

    #[test]
    fn absurd_shifts_and_maxima_do_not_panic() {
        let format = PixelFormat::from_bytes(&[
            32, 24, 1, 1, 255, 255, 255, 255, 255, 255, 200, 31, 255, 0, 0, 0,
        ])
        .unwrap();
        assert_eq!(encoded(format, 0xff_ff_ff).len(), 4);
    }

    #[test]
    fn colour_maps_and_odd_pixel_sizes_are_refused() {
        let mut colour_map = NOVNC;
        colour_map[3] = 0;
        assert_eq!(
            PixelFormat::from_bytes(&colour_map),
            Err(PixelFormatError::NotTrueColour)
        );
        let mut twenty_four = NOVNC;
        twenty_four[0] = 24;
        assert_eq!(
            PixelFormat::from_bytes(&twenty_four),
            Err(PixelFormatError::BitsPerPixel(24))
        );
    }
}
