//! Throwaway certificate authorities and certificates, made with `openssl` as an
//! administrator would make them. Every certificate is `<name>-cert.pem` with its key
//! `<name>-key.pem` in one temporary directory (QEMU's x509 directories want exactly
//! `ca-cert.pem`, `server-cert.pem` and `server-key.pem`).
//!
//! Callers check `tools::have(&["openssl"])` first.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The key type of a certificate.
#[derive(Clone, Copy)]
pub enum Key {
    /// ECDSA on P-256: small and fast, what the TLS tests use.
    Ec,
    /// RSA 2048: what oVirt engines sign with.
    Rsa,
}

impl Key {
    fn newkey(self) -> &'static [&'static str] {
        match self {
            Key::Ec => &[
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ],
            Key::Rsa => &["-newkey", "rsa:2048", "-nodes"],
        }
    }
}

/// Extensions of a CA certificate.
pub const CA: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
/// Extensions of a server certificate for 127.0.0.1 (and `localhost` when named).
pub fn server_extensions(names: &str) -> String {
    format!(
        "subjectAltName={names}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\n"
    )
}
/// Extensions of a client certificate.
pub const CLIENT: &str =
    "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n";

/// A directory of certificates, removed when dropped.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}-cert.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}-key.pem"))
    }

    /// Runs openssl in the directory; fails the test with openssl's complaint.
    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs (tests/setup.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed certificate `name` for `cn` with `extensions` (one per line; none
    /// when empty): a CA with [`CA`], or an attacker's look-alike without.
    pub fn self_signed(&self, name: &str, cn: &str, key: Key, extensions: &str) {
        let (cert, keyfile) = (format!("{name}-cert.pem"), format!("{name}-key.pem"));
        let subj = format!("/CN={cn}");
        let mut args = vec!["req", "-x509"];
        args.extend(key.newkey());
        args.extend([
            "-keyout", &keyfile, "-out", &cert, "-days", "2", "-subj", &subj,
        ]);
        for ext in extensions.lines() {
            args.extend(["-addext", ext]);
        }
        self.openssl(&args);
    }

    /// A certificate `name` for `cn` issued by the CA `ca`, with `extensions` (an
    /// extension file's text; none when empty).
    pub fn issue(&self, name: &str, ca: &str, cn: &str, key: Key, extensions: &str) {
        let (cert, keyfile, csr) = (
            format!("{name}-cert.pem"),
            format!("{name}-key.pem"),
            format!("{name}.csr"),
        );
        let subj = format!("/CN={cn}");
        let mut args = vec!["req"];
        args.extend(key.newkey());
        args.extend(["-keyout", &keyfile, "-out", &csr, "-subj", &subj]);
        self.openssl(&args);
        let (ca_cert, ca_key) = (format!("{ca}-cert.pem"), format!("{ca}-key.pem"));
        let ext_file = format!("{name}.ext");
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
        ];
        if !extensions.is_empty() {
            std::fs::write(self.path(&ext_file), extensions).expect("extension file written");
            args.extend(["-extfile", &ext_file]);
        }
        self.openssl(&args);
    }
}
