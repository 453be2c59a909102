//! Keys: PEM loading, key ids (RFC 7638 thumbprints), the trusted set, key generation.
//!
//! The files are the ones `openssl genpkey -algorithm ed25519` (PKCS#8 PEM private key)
//! and `openssl pkey -pubout` (SPKI PEM public key) write, so an engine can make its keys
//! with whatever it already has. A private key that group or others can read is refused:
//! it signs bearer credentials for every console the proxies can reach.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest key file read: PEM keys are a few hundred bytes, and a bounded read keeps a
/// mistaken path (a log, `/dev/zero`) from eating memory.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Why a key could not be loaded or written. Every variant about a file names it.
///
/// Each message is complete on its own, cause included (`cause` fields are not
/// `source()`s), so a log line with `%err` says everything and an anyhow chain does
/// not print the cause twice.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{} is accessible to group or others (mode {mode:04o}); a signing key must be private: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "{} is a public key; signing needs the private key (the .key file of the pair, which stays on the engine)",
        path.display()
    )]
    PublicNotPrivate { path: PathBuf },
    #[error("{} is not a PKCS#8 PEM Ed25519 private key: {cause}", path.display())]
    PrivateKey {
        path: PathBuf,
        cause: ed25519_dalek::pkcs8::Error,
    },
    #[error("not an SPKI PEM Ed25519 public key: {0}")]
    PublicPem(ed25519_dalek::pkcs8::spki::Error),
    #[error("the public key is a small-order point, under which forged signatures verify")]
    WeakKey,
    #[error("{}: {cause}", path.display())]
    PublicKeyFile { path: PathBuf, cause: Box<KeyError> },
    #[error("cannot list {}: {cause}", path.display())]
    ReadDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "no trusted keys found in {} (a directory contributes its *.pub files)",
        list(paths)
    )]
    NoTrustedKeys { paths: Vec<PathBuf> },
    #[error("key name {name:?} must be a plain file name (no /, not empty, not starting with .)")]
    BadName { name: String },
    #[error("{} already exists; refusing to overwrite a key (choose another --name or directory)", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}: {cause}", path.display())]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot encode the new private key as PKCS#8 PEM: {0}")]
    EncodePrivate(ed25519_dalek::pkcs8::Error),
    #[error("cannot encode the new public key as SPKI PEM: {0}")]
    EncodePublic(ed25519_dalek::pkcs8::spki::Error),
}

fn list(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// The public keys the proxy trusts, by key id. Several at once for rotation.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, VerifyingKey)>,
    /// When each key's file was last modified, for the key-age metric (rotation
    /// overdue?); absent for keys not read from a file.
    modified: Vec<(String, std::time::SystemTime)>,
}

impl KeySet {
    pub fn new() -> Self {
        KeySet::default()
    }
    /// Adds a key; returns its id.
    pub fn insert(&mut self, key: VerifyingKey) -> String {
        let kid = thumbprint(&key);
        if self.get(&kid).is_none() {
            self.keys.push((kid.clone(), key));
        }
        kid
    }
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, v)| v)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &VerifyingKey)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// The modification time of the file the key `kid` was first read from.
    pub fn modified(&self, kid: &str) -> Option<std::time::SystemTime> {
        self.modified
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, t)| *t)
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key.
///
/// The hashed JSON is the OKP key's required members in lexicographic order with no
/// whitespace (RFC 8037 §2): `{"crv":"Ed25519","kty":"OKP","x":"…"}`.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    let jwk = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
}

/// Reads a PKCS#8 PEM private key, refusing a file that group or others can read.
///
/// The mode is checked on the opened file, not the path, so a file swapped between
/// the check and the read cannot slip through.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let read_err = |cause| KeyError::Read {
        path: path.to_owned(),
        cause,
    };
    let file = File::open(path).map_err(read_err)?;
    let mode = file.metadata().map_err(read_err)?.permissions().mode();
    let pem = read_bounded(file).map_err(read_err)?;
    // Before the mode: a public key is readable by design, and "chmod it" would be
    // the wrong advice.
    if pem.contains("-----BEGIN PUBLIC KEY-----") && !pem.contains("PRIVATE KEY-----") {
        return Err(KeyError::PublicNotPrivate {
            path: path.to_owned(),
        });
    }
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    SigningKey::from_pkcs8_pem(&pem).map_err(|cause| KeyError::PrivateKey {
        path: path.to_owned(),
        cause,
    })
}

fn read_bounded(file: File) -> std::io::Result<String> {
    let mut text = String::new();
    file.take(MAX_KEY_FILE).read_to_string(&mut text)?;
    Ok(text)
}

/// Reads an SPKI PEM public key, refusing small-order points (under such a key a
/// signature can verify for any message, depending on the verifier).
pub fn parse_public_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    let key = VerifyingKey::from_public_key_pem(pem).map_err(KeyError::PublicPem)?;
    if key.is_weak() {
        return Err(KeyError::WeakKey);
    }
    Ok(key)
}

fn load_public_file(path: &Path) -> Result<VerifyingKey, KeyError> {
    let file = File::open(path).map_err(|cause| KeyError::Read {
        path: path.to_owned(),
        cause,
    })?;
    let pem = read_bounded(file).map_err(|cause| KeyError::Read {
        path: path.to_owned(),
        cause,
    })?;
    parse_public_pem(&pem).map_err(|e| KeyError::PublicKeyFile {
        path: path.to_owned(),
        cause: Box::new(e),
    })
}

/// Loads trusted keys from files and directories (every `*.pub` inside).
///
/// A file named on its own is loaded whatever its name. In a directory only `*.pub`
/// files count, in sorted order so that errors are reproducible; anything else there
/// (a README, the private keys) is skipped. An empty result is an error: a proxy that
/// trusts nothing would refuse every ticket, which is a configuration mistake.
pub fn load_trusted(paths: &[PathBuf]) -> Result<KeySet, KeyError> {
    let mut set = KeySet::new();
    for path in paths {
        if path.is_dir() {
            let dir_err = |cause| KeyError::ReadDir {
                path: path.clone(),
                cause,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(dir_err)? {
                let p = entry.map_err(dir_err)?.path();
                if p.extension().is_some_and(|e| e == "pub") && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            for p in files {
                insert_file(&mut set, &p)?;
            }
        } else {
            insert_file(&mut set, path)?;
        }
    }
    if set.is_empty() {
        return Err(KeyError::NoTrustedKeys {
            paths: paths.to_vec(),
        });
    }
    Ok(set)
}

/// What a reload trusts: every key that loads from `paths` now, and the error of each
/// file or directory that did not (an empty set is one more error). Unlike
/// [`load_trusted`], one bad file does not refuse the rest: the caller replaces the
/// set in force with this one whatever went wrong, so a key removed from the trust
/// directory, or whose file broke, stops verifying at once (fail closed), and a
/// broken neighbour never keeps it alive.
pub fn load_trusted_available(paths: &[PathBuf]) -> (KeySet, Vec<KeyError>) {
    let mut set = KeySet::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            let listed = std::fs::read_dir(path).and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.path()))
                    .collect::<std::io::Result<Vec<PathBuf>>>()
            });
            let mut files = match listed {
                Ok(files) => files,
                Err(cause) => {
                    errors.push(KeyError::ReadDir {
                        path: path.clone(),
                        cause,
                    });
                    continue;
                }
            };
            files.retain(|p| p.extension().is_some_and(|e| e == "pub") && p.is_file());
            files.sort();
            for p in files {
                if let Err(e) = insert_file(&mut set, &p) {
                    errors.push(e);
                }
            }
        } else if let Err(e) = insert_file(&mut set, path) {
            errors.push(e);
        }
    }
    if set.is_empty() && !paths.is_empty() {
        errors.push(KeyError::NoTrustedKeys {
            paths: paths.to_vec(),
        });
    }
    (set, errors)
}

fn insert_file(set: &mut KeySet, path: &Path) -> Result<(), KeyError> {
    let key = load_public_file(path)?;
    let kid = set.insert(key);
    if set.modified(&kid).is_none() {
        if let Ok(t) = std::fs::metadata(path).and_then(|m| m.modified()) {
            set.modified.push((kid, t));
        }
    }
    Ok(())
}

/// Writes `NAME.key` (mode 0600) and `NAME.pub` into `dir`, refusing to overwrite;
/// returns the key id.
///
/// The private key file is created with mode 0600 (never chmod-ed afterwards, so it is
/// not readable by others for even a moment) and with `create_new`, so an existing key
/// is never replaced. If `NAME.pub` exists, the fresh `NAME.key` is removed again.
pub fn generate(dir: &Path, name: &str) -> Result<String, KeyError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
        return Err(KeyError::BadName {
            name: name.to_owned(),
        });
    }
    let key = random_signing_key();
    // PKCS#8 v1 (no embedded public key), byte for byte what `openssl genpkey` writes.
    // ed25519-dalek's own `to_pkcs8_pem` emits v2 with the public key, which OpenSSL
    // 3.0 refuses to read ("unsupported"), so the engine's tools could not use it.
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private_pem = v1
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(KeyError::EncodePrivate)?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(KeyError::EncodePublic)?;

    let key_path = dir.join(format!("{name}.key"));
    let pub_path = dir.join(format!("{name}.pub"));
    let mut key_file = create_new(&key_path, 0o600)?;
    let mut pub_file = match create_new(&pub_path, 0o644) {
        Ok(f) => f,
        Err(e) => {
            drop(key_file);
            // Best effort: we created this empty file a moment ago.
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
    };
    write_all(&mut key_file, &key_path, private_pem.as_bytes())?;
    write_all(&mut pub_file, &pub_path, public_pem.as_bytes())?;
    Ok(thumbprint(&key.verifying_key()))
}

fn create_new(path: &Path, mode: u32) -> Result<File, KeyError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|cause| {
            if cause.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_owned(),
                }
            } else {
                KeyError::Write {
                    path: path.to_owned(),
                    cause,
                }
            }
        })
}

fn write_all(file: &mut File, path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|cause| KeyError::Write {
            path: path.to_owned(),
            cause,
        })
}

/// A fresh throwaway key (for `demo` and tests).
pub fn random_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// A random ticket id: 128 bits, base64url.
pub fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::process::Command;

    fn write_mode(path: &Path, text: &str, mode: u32) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn pem_of(key: &VerifyingKey) -> String {
        key.to_public_key_pem(LineEnding::LF).unwrap()
    }

    fn have_openssl() -> bool {
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn thumbprint_matches_the_rfc_8037_example() {
        // RFC 8037 appendix A.1 (key) and A.3 (thumbprint).
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let key = SigningKey::from_bytes(&d.try_into().unwrap());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        assert_eq!(
            thumbprint(&key.verifying_key()),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn generate_writes_a_0600_private_key_and_a_public_key_that_match() {
        let dir = tempfile::tempdir().unwrap();
        let kid = generate(dir.path(), "engine").unwrap();
        let key_path = dir.path().join("engine.key");
        let mode = fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = load_signing_key(&key_path).unwrap();
        let public = parse_public_pem(&fs::read_to_string(dir.path().join("engine.pub")).unwrap());
        assert_eq!(public.unwrap(), key.verifying_key());
        assert_eq!(kid, thumbprint(&key.verifying_key()));
        assert_eq!(kid.len(), 43);
    }

    #[test]
    fn generate_refuses_to_overwrite_either_file() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "engine").unwrap();
        let before = fs::read(dir.path().join("engine.key")).unwrap();
        let err = generate(dir.path(), "engine").unwrap_err();
        assert!(matches!(&err, KeyError::Exists { path } if path.ends_with("engine.key")));
        assert!(err.to_string().contains("refusing to overwrite"));
        assert_eq!(fs::read(dir.path().join("engine.key")).unwrap(), before);

        // A stray NAME.pub is not overwritten, and no orphan NAME.key is left behind.
        fs::write(dir.path().join("other.pub"), "keep me").unwrap();
        let err = generate(dir.path(), "other").unwrap_err();
        assert!(matches!(&err, KeyError::Exists { path } if path.ends_with("other.pub")));
        assert!(!dir.path().join("other.key").exists());
        assert_eq!(
            fs::read_to_string(dir.path().join("other.pub")).unwrap(),
            "keep me"
        );
    }

    #[test]
    fn generate_refuses_a_name_that_is_not_a_plain_file_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "../x", "a/b", ".hidden"] {
            assert!(
                matches!(generate(dir.path(), name), Err(KeyError::BadName { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn a_public_key_given_as_the_signing_key_is_named_as_such_whatever_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "k").unwrap();
        let path = dir.path().join("k.pub");
        for mode in [0o644, 0o600] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = load_signing_key(&path).unwrap_err();
            assert!(matches!(err, KeyError::PublicNotPrivate { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("is a public key"), "{msg}");
            assert!(!msg.contains("chmod"), "{msg}");
        }
    }

    #[test]
    fn a_key_readable_by_group_or_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "k").unwrap();
        let path = dir.path().join("k.key");
        for mode in [0o644, 0o640, 0o604, 0o620, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = load_signing_key(&path).unwrap_err();
            assert!(matches!(err, KeyError::Permissions { mode: m, .. } if m == mode));
            let msg = err.to_string();
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(
                msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_signing_key(&path).is_ok());
    }

    #[test]
    fn a_missing_key_file_is_named_in_the_error() {
        let err = load_signing_key(Path::new("/nonexistent/engine.key")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/engine.key"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_private_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        // (A public key is refused with its own message: the test above.)
        write_mode(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            0o600,
        );
        let err = load_signing_key(&path).unwrap_err();
        assert!(matches!(err, KeyError::PrivateKey { .. }), "{err}");
        assert!(err.to_string().contains("k.key"));
    }

    #[test]
    fn openssl_keys_load_and_match_ours_byte_for_byte() {
        if !have_openssl() {
            eprintln!("skipped: no openssl");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("ossl.key");
        let pub_path = dir.path().join("ossl.pub");
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let key_arg = key_path.to_str().unwrap();
        run(&["genpkey", "-algorithm", "ed25519", "-out", key_arg]);
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
        run(&[
            "pkey",
            "-in",
            key_arg,
            "-pubout",
            "-out",
            pub_path.to_str().unwrap(),
        ]);

        let key = load_signing_key(&key_path).unwrap();
        let openssl_pub = fs::read_to_string(&pub_path).unwrap();
        assert_eq!(parse_public_pem(&openssl_pub).unwrap(), key.verifying_key());
        assert_eq!(pem_of(&key.verifying_key()), openssl_pub);
        let set = load_trusted(&[pub_path]).unwrap();
        assert!(set.get(&thumbprint(&key.verifying_key())).is_some());
    }

    #[test]
    fn our_keys_are_read_by_openssl() {
        if !have_openssl() {
            eprintln!("skipped: no openssl");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "ours").unwrap();
        for (file, extra) in [("ours.key", None), ("ours.pub", Some("-pubin"))] {
            let path = dir.path().join(file);
            let mut cmd = Command::new("openssl");
            cmd.args(["pkey", "-noout", "-in"]).arg(&path);
            cmd.args(extra);
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn load_trusted_reads_pub_files_in_order_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            random_signing_key().verifying_key(),
            random_signing_key().verifying_key(),
        );
        fs::write(dir.path().join("b.pub"), pem_of(&b)).unwrap();
        fs::write(dir.path().join("a.pub"), pem_of(&a)).unwrap();
        fs::write(dir.path().join("README"), "not a key").unwrap();
        fs::write(dir.path().join("a.pub.bak"), "not a key either").unwrap();
        fs::create_dir(dir.path().join("sub.pub")).unwrap();
        let set = load_trusted(&[dir.path().to_owned()]).unwrap();
        let kids: Vec<&str> = set.iter().map(|(k, _)| k).collect();
        assert_eq!(kids, [thumbprint(&a), thumbprint(&b)]);

        // A file named directly counts whatever its name; duplicates collapse.
        let other = dir.path().join("extra.pem");
        fs::write(&other, pem_of(&a)).unwrap();
        let set = load_trusted(&[other, dir.path().to_owned()]).unwrap();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn load_trusted_names_the_file_holding_a_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("good.pub"),
            pem_of(&random_signing_key().verifying_key()),
        )
        .unwrap();
        fs::write(
            dir.path().join("junk.pub"),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n",
        )
        .unwrap();
        let err = load_trusted(&[dir.path().to_owned()]).unwrap_err();
        assert!(matches!(&err, KeyError::PublicKeyFile { path, .. } if path.ends_with("junk.pub")));
        assert!(err.to_string().contains("junk.pub"), "{err}");
    }

    #[test]
    fn a_reload_trusts_the_keys_that_load_and_names_the_files_that_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            random_signing_key().verifying_key(),
            random_signing_key().verifying_key(),
        );
        let pem = |k: &VerifyingKey| k.to_public_key_pem(LineEnding::LF).unwrap();
        fs::write(dir.path().join("a.pub"), pem(&a)).unwrap();
        fs::write(dir.path().join("b.pub"), pem(&b)).unwrap();
        fs::write(dir.path().join("broken.pub"), "not a key").unwrap();
        let (set, errors) = load_trusted_available(&[dir.path().to_owned()]);
        assert_eq!(set.len(), 2);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().contains("broken.pub"),
            "{}",
            errors[0]
        );
        // b removed: only a is trusted, the broken neighbour notwithstanding.
        fs::remove_file(dir.path().join("b.pub")).unwrap();
        let (set, _) = load_trusted_available(&[dir.path().to_owned()]);
        assert!(set.get(&thumbprint(&b)).is_none());
        assert!(set.get(&thumbprint(&a)).is_some());
        // The directory gone: nothing is trusted, and that is an error too.
        let gone = dir.path().join("gone");
        let (set, errors) = load_trusted_available(&[gone]);
        assert!(set.is_empty());
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn load_trusted_refuses_to_trust_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "no keys here").unwrap();
        let err = load_trusted(&[dir.path().to_owned()]).unwrap_err();
        assert!(matches!(err, KeyError::NoTrustedKeys { .. }));
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        assert!(matches!(
            load_trusted(&[]),
            Err(KeyError::NoTrustedKeys { .. })
        ));
    }

    #[test]
    fn a_small_order_public_key_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(matches!(
            parse_public_pem(&pem_of(&weak)),
            Err(KeyError::WeakKey)
        ));
    }

    #[test]
    fn a_private_key_pem_is_not_a_public_key() {
        let pem = random_signing_key().to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(matches!(
            parse_public_pem(&pem),
            Err(KeyError::PublicPem(_))
        ));
    }

    #[test]
    fn random_jti_is_128_bits_of_base64url() {
        let (a, b) = (random_jti(), random_jti());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
    }
}
