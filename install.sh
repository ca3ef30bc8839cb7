#!/bin/sh
# Installs a ci-secrets release archive: downloads it and SHA256SUMS, verifies the checksum,
# and only then copies the binary, man page and shell completions under a prefix.
# A bad or missing checksum installs nothing and leaves no file behind.
#
#   curl -fsSLO https://gitlab.com/ci-secrets/ci-secrets/-/raw/main/install.sh
#   sh install.sh --version 0.1.0 --prefix "$HOME/.local"
#
# Options (environment variables in brackets):
#   --version V     release to install [CI_SECRETS_VERSION]; required unless --archive-url
#   --prefix DIR    install under DIR/bin, DIR/share [CI_SECRETS_PREFIX]; default /usr/local
#   --base-url URL  where the archive and SHA256SUMS are [CI_SECRETS_BASE_URL]; default the
#                   project's generic package registry for that version
#   --archive-url URL  the archive itself (SHA256SUMS is looked up beside it)
#   --target T      target triple [CI_SECRETS_TARGET]; default detected (x86_64/aarch64 Linux)
# URLs may be https:// or file://. Needs curl (or wget for http(s)), tar, and sha256sum or shasum.
set -eu

version=${CI_SECRETS_VERSION:-}
prefix=${CI_SECRETS_PREFIX:-/usr/local}
base_url=${CI_SECRETS_BASE_URL:-}
archive_url=
target=${CI_SECRETS_TARGET:-}

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    --base-url) base_url=${2:?--base-url needs a value}; shift 2 ;;
    --archive-url) archive_url=${2:?--archive-url needs a value}; shift 2 ;;
    --target) target=${2:?--target needs a value}; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

if [ -z "$target" ]; then
    case $(uname -s)-$(uname -m) in
    Linux-x86_64 | Linux-amd64) target=x86_64-unknown-linux-gnu ;;
    Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
    *) die "no release archive for $(uname -s) $(uname -m); build from source: cargo install --locked --git https://gitlab.com/ci-secrets/ci-secrets secrets-cli" ;;
    esac
fi

if [ -z "$archive_url" ]; then
    [ -n "$version" ] || die "give --version V (or --archive-url URL)"
    version=${version#v}
    if [ -z "$base_url" ]; then
        base_url="https://gitlab.com/api/v4/projects/ci-secrets%2Fci-secrets/packages/generic/ci-secrets/$version"
    fi
    archive_url="${base_url%/}/ci-secrets-$version-$target.tar.gz"
fi
archive=${archive_url##*/}
sums_url="${archive_url%/*}/SHA256SUMS"
case $archive in
ci-secrets-*.tar.gz) ;;
*) die "$archive is not a ci-secrets release archive (ci-secrets-VERSION-TARGET.tar.gz)" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/ci-secrets-install.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM HUP

fetch() { # URL FILE
    case $1 in
    file://*)
        cp "${1#file://}" "$2" 2>/dev/null || die "cannot read $1"
        ;;
    *)
        if command -v curl >/dev/null 2>&1; then
            curl --proto '=https' --tlsv1.2 -fsSL -o "$2" "$1" || die "cannot download $1"
        elif command -v wget >/dev/null 2>&1; then
            wget -q -O "$2" "$1" || die "cannot download $1"
        else
            die "needs curl or wget to download $1"
        fi
        ;;
    esac
}

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "needs sha256sum or shasum to verify the archive"
    fi
}

fetch "$archive_url" "$work/$archive"
fetch "$sums_url" "$work/SHA256SUMS"

expected=$(awk -v name="$archive" '$2 == name || $2 == "*" name { print $1; exit }' "$work/SHA256SUMS")
[ -n "$expected" ] || die "SHA256SUMS has no line for $archive; refusing to install"
actual=$(sha256 "$work/$archive")
if [ "$expected" != "$actual" ]; then
    die "checksum mismatch for $archive (expected $expected, got $actual); refusing to install, nothing was written"
fi

mkdir "$work/unpacked"
tar -xzf "$work/$archive" -C "$work/unpacked"
root="$work/unpacked/${archive%.tar.gz}"
[ -x "$root/bin/ci-secrets" ] || die "$archive has no bin/ci-secrets"

# Verified and unpacked: only now touch the prefix. Each file lands under a temporary name
# and is renamed into place, so a running ci-secrets is never overwritten mid-file.
place() { # SRC DEST MODE
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.tmp.$$"
    chmod "$3" "$2.tmp.$$"
    mv -f "$2.tmp.$$" "$2"
}
place "$root/bin/ci-secrets" "$prefix/bin/ci-secrets" 755
place "$root/share/man/man1/ci-secrets.1" "$prefix/share/man/man1/ci-secrets.1" 644
place "$root/share/bash-completion/completions/ci-secrets" "$prefix/share/bash-completion/completions/ci-secrets" 644
place "$root/share/zsh/site-functions/_ci-secrets" "$prefix/share/zsh/site-functions/_ci-secrets" 644
place "$root/share/fish/vendor_completions.d/ci-secrets.fish" "$prefix/share/fish/vendor_completions.d/ci-secrets.fish" 644

echo "installed $("$prefix/bin/ci-secrets" --version) to $prefix/bin/ci-secrets"
