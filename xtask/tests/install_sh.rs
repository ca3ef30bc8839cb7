//! `install.sh` against local archives: a good checksum installs every file, a bad or missing
//! one refuses and leaves nothing under the prefix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NAME: &str = "ci-secrets-9.9.9-x86_64-unknown-linux-gnu";

fn install_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../install.sh")
}

/// A release-shaped archive whose `bin/ci-secrets` is a script, and its SHA256SUMS.
fn release(dir: &Path) -> PathBuf {
    let root = dir.join("stage").join(NAME);
    for (rel, text) in [
        (
            "bin/ci-secrets",
            "#!/bin/sh\necho 'ci-secrets 9.9.9 (commit abc)'\n",
        ),
        ("share/man/man1/ci-secrets.1", ".TH ci-secrets 1\n"),
        ("share/bash-completion/completions/ci-secrets", "complete\n"),
        ("share/zsh/site-functions/_ci-secrets", "#compdef\n"),
        (
            "share/fish/vendor_completions.d/ci-secrets.fish",
            "complete\n",
        ),
        ("README.md", "readme\n"),
    ] {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    std::fs::set_permissions(
        root.join("bin/ci-secrets"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = dir.join("release");
    std::fs::create_dir_all(&out).unwrap();
    let archive = out.join(format!("{NAME}.tar.gz"));
    assert!(
        Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.join("stage"))
            .arg(NAME)
            .status()
            .unwrap()
            .success()
    );
    let sums = Command::new("sha256sum")
        .arg(format!("{NAME}.tar.gz"))
        .current_dir(&out)
        .output()
        .unwrap();
    std::fs::write(out.join("SHA256SUMS"), sums.stdout).unwrap();
    archive
}

fn run(args: &[&str], prefix: &Path) -> Output {
    Command::new("sh")
        .arg(install_sh())
        .args(args)
        .arg("--prefix")
        .arg(prefix)
        .env("TMPDIR", prefix.parent().unwrap())
        .output()
        .unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ci-secrets-install."))
        .collect()
}

#[test]
fn a_good_checksum_installs_everything() {
    let dir = tempfile::tempdir().unwrap();
    let archive = release(dir.path());
    let prefix = dir.path().join("prefix");
    let url = format!("file://{}", archive.display());
    let out = run(&["--archive-url", &url], &prefix);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("installed ci-secrets 9.9.9"));
    let bin = prefix.join("bin/ci-secrets");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    for rel in [
        "share/man/man1/ci-secrets.1",
        "share/bash-completion/completions/ci-secrets",
        "share/zsh/site-functions/_ci-secrets",
        "share/fish/vendor_completions.d/ci-secrets.fish",
    ] {
        assert!(
            std::fs::metadata(prefix.join(rel)).unwrap().len() > 0,
            "{rel}"
        );
    }
    assert!(leftovers(dir.path()).is_empty(), "temporary directory left");

    // --version with --base-url finds the same archive by name.
    let again = dir.path().join("prefix2");
    let base = format!("file://{}", archive.parent().unwrap().display());
    let out = run(
        &[
            "--version",
            "v9.9.9",
            "--base-url",
            &base,
            "--target",
            "x86_64-unknown-linux-gnu",
        ],
        &again,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(again.join("bin/ci-secrets").is_file());
}

#[test]
fn a_bad_checksum_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let archive = release(dir.path());
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&archive, bytes).unwrap();
    let prefix = dir.path().join("prefix");
    let out = run(
        &["--archive-url", &format!("file://{}", archive.display())],
        &prefix,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(stderr.contains("refusing to install"), "{stderr}");
    assert!(!prefix.exists(), "the prefix was touched");
    assert!(leftovers(dir.path()).is_empty(), "temporary directory left");
}

#[test]
fn a_missing_checksum_line_or_archive_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let archive = release(dir.path());
    std::fs::write(
        archive.parent().unwrap().join("SHA256SUMS"),
        "0000  other.tar.gz\n",
    )
    .unwrap();
    let prefix = dir.path().join("prefix");
    let out = run(
        &["--archive-url", &format!("file://{}", archive.display())],
        &prefix,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHA256SUMS has no line for"));
    assert!(!prefix.exists());

    let out = run(
        &[
            "--archive-url",
            &format!("file://{}/nope/{NAME}.tar.gz", dir.path().display()),
        ],
        &prefix,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file://"));
    assert!(!prefix.exists());
    assert!(leftovers(dir.path()).is_empty());
}
