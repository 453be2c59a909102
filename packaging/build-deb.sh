#!/usr/bin/env bash
# Builds the release binary and the Debian package; prints the .deb's path last.
#
#   bash packaging/build-deb.sh            # -> target/debian/consolegate_<version>-1_<arch>.deb
#
# Needs the console page in web/ (console.html and its scripts and styles) and, to
# bundle noVNC, web/node_modules/@novnc/novnc (`cd web && npm ci`). Without noVNC the
# package still builds; /usr/share/consolegate/novnc then holds only a note, and the
# installed config must point novnc_dir at Debian's copy (`apt install novnc`,
# novnc_dir = "/usr/share/novnc").
set -euo pipefail
cd "$(dirname "$0")/.."

if ! compgen -G 'web/*.html' >/dev/null; then
    echo "build-deb: web/*.html not found: the console page (web/console.html, .js, .css) must be in web/ to package it" >&2
    exit 1
fi

if ! command -v cargo-deb >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-deb" ]; then
    echo "build-deb: installing cargo-deb" >&2
    cargo install cargo-deb --locked --quiet
fi

# Stage noVNC: only what the browser loads, plus its licence and version.
stage=target/deb-stage
rm -rf "$stage"
mkdir -p "$stage/novnc"
novnc=web/node_modules/@novnc/novnc
if [ -f "$novnc/core/rfb.js" ]; then
    cp -r "$novnc/core" "$novnc/vendor" "$novnc/package.json" "$stage/novnc/"
    [ -f "$novnc/LICENSE.txt" ] && cp "$novnc/LICENSE.txt" "$stage/novnc/"
    echo "build-deb: bundling noVNC $(sed -n 's/^ *"version": *"\(.*\)".*/\1/p' "$novnc/package.json" | head -1)" >&2
else
    echo "build-deb: warning: $novnc is missing (run: cd web && npm ci); the package will not bundle noVNC" >&2
    cat > "$stage/novnc/README.txt" <<'NOTE'
This consolegate package was built without noVNC. Install Debian's copy and point
the proxy at it in /etc/consolegate/consolegate.toml:

    apt install novnc
    [web]
    novnc_dir = "/usr/share/novnc"
NOTE
fi

# spice-html5 (served at /spice/) and xterm.js with its fit add-on (/xterm/), for SPICE
# and serial consoles, from the same npm install. Missing ones leave a note instead;
# the page then says the console type has no client installed.
mkdir -p "$stage/spice" "$stage/xterm"
spice=web/node_modules/@spice-project/spice-html5
if [ -f "$spice/src/main.js" ]; then
    cp -r "$spice/src/." "$stage/spice/"
    cp "$spice/COPYING.LESSER" "$spice/package.json" "$stage/spice/"
else
    echo "build-deb: warning: $spice is missing; SPICE consoles need Debian's spice-html5 (spice_dir = \"/usr/share/spice-html5\")" >&2
    echo "Install Debian's spice-html5 and set spice_dir = \"/usr/share/spice-html5\" in [web]." > "$stage/spice/README.txt"
fi
xterm=web/node_modules/@xterm
if [ -f "$xterm/xterm/lib/xterm.mjs" ] && [ -f "$xterm/addon-fit/lib/addon-fit.mjs" ]; then
    for part in xterm addon-fit; do
        mkdir -p "$stage/xterm/$part"
        cp -r "$xterm/$part/lib" "$xterm/$part/package.json" "$xterm/$part/LICENSE" "$stage/xterm/$part/"
        [ -d "$xterm/$part/css" ] && cp -r "$xterm/$part/css" "$stage/xterm/$part/"
    done
else
    echo "build-deb: warning: $xterm is missing; serial consoles will have no client" >&2
    echo "This package was built without xterm.js: serial consoles have no client." > "$stage/xterm/README.txt"
fi

# asciinema-player's bundle (/asciinema/), for the recording player's serial recordings.
mkdir -p "$stage/asciinema"
asciinema=web/node_modules/asciinema-player
if [ -f "$asciinema/dist/bundle/asciinema-player.min.js" ]; then
    cp "$asciinema/dist/bundle/asciinema-player.min.js" "$asciinema/dist/bundle/asciinema-player.css" \
        "$asciinema/LICENSE" "$asciinema/package.json" "$stage/asciinema/"
else
    echo "build-deb: warning: $asciinema is missing; the recording player cannot play serial recordings" >&2
    echo "This package was built without asciinema-player: serial recordings do not play in player.html." > "$stage/asciinema/README.txt"
fi

# cargo-deb builds target/release/consolegate itself (--locked: the lock file is the
# source of truth), strips the packaged copy (--strip: the release profile keeps line
# tables, 45 MB, for local profiling), and computes the libc dependency ($auto).
deb=$(cargo deb --locked --strip --output target/debian/ 2>&1 | tee /dev/stderr | tail -1)
case "$deb" in
    *.deb) [ -f "$deb" ] || { echo "build-deb: $deb not written" >&2; exit 1; } ;;
    *) echo "build-deb: cargo deb failed" >&2; exit 1 ;;
esac
echo "$deb"
