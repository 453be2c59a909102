//! The static-file path resolver, `front::resolve_static`: whatever the URL path, a
//! resolved file lies under the web directory or one of the client mounts (noVNC,
//! spice-html5, xterm.js) and its path has only plain names in it (no `..`, no `.`
//! files, no root or prefix components).
#![no_main]

use consolegate::front::resolve_static;
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(url_path) = std::str::from_utf8(data) else {
        return;
    };
    // The default layout: the clients installed inside the web directory.
    let web = Path::new("/srv/consolegate/web");
    let mounts: [(&str, &Path); 3] = [
        ("novnc/", Path::new("/srv/consolegate/web/node_modules/@novnc/novnc")),
        ("spice/", Path::new("/srv/consolegate/web/node_modules/@spice-project/spice-html5/src")),
        ("xterm/", Path::new("/srv/consolegate/web/node_modules/@xterm")),
    ];
    let Some(p) = resolve_static(web, &mounts, url_path) else {
        return;
    };
    let root = mounts
        .iter()
        .map(|(_, dir)| *dir)
        .find(|dir| p.starts_with(dir))
        .unwrap_or(web);
    let rel = p
        .strip_prefix(root)
        .unwrap_or_else(|_| panic!("{p:?} escapes {root:?} for {url_path:?}"));
    assert!(
        rel.components().count() > 0,
        "{url_path:?} resolved to a root"
    );
    for c in rel.components() {
        match c {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                // `..` and `.` are caught here too, whatever the path type made of them.
                assert!(!name.starts_with('.'), "{url_path:?} → hidden {p:?}");
                assert!(name != "node_modules", "{url_path:?} → {p:?}");
            }
            other => panic!("{url_path:?} → {p:?} has component {other:?}"),
        }
    }
});
