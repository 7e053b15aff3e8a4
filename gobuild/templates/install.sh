#!/bin/sh
# Installs a Go command built by gobuild: picks the build for this machine, downloads it from its
# result URL and checks the binary's SHA-256 against the sum in that URL before making it executable.
# Into $BINDIR, else $PREFIX/bin, else ~/.local/bin. Needs curl or wget, and sha256sum or shasum.
set -eu

{% for name, value in values -%}
{{ name }}={{ value }}
{% endfor %}
say() { printf 'gobuild install: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

system=$(uname -s)
goos=$(printf '%s' "$system" | tr '[:upper:]' '[:lower:]')
case $goos in
  linux | darwin | freebsd | openbsd | netbsd | dragonfly) ;;
  sunos) goos=solaris ;;
  *) die "gobuild has no builds for this system: $system" ;;
esac
machine=$(uname -m)
case $machine in
  x86_64 | amd64) goarch=amd64 ;;
  i386 | i486 | i586 | i686 | i86pc | x86) goarch=386 ;;
  aarch64 | arm64) goarch=arm64 ;;
  armv7* | armv8l) goarch=arm ;;  # gobuild's arm builds use Go's default GOARM=7
  armv6* | armv5*) die "gobuild's arm builds need ARMv7 (Go's default GOARM=7); this machine is $machine" ;;
  riscv64) goarch=riscv64 ;;
  ppc64le) goarch=ppc64le ;;
  ppc64) goarch=ppc64 ;;
  s390x) goarch=s390x ;;
  loongarch64) goarch=loong64 ;;
  *) die "gobuild has no builds for this CPU: $machine" ;;
esac

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -sSL -o "$2" -w '%{http_code}' -- "$1" || :; }
elif command -v wget >/dev/null 2>&1; then
  # Plain first (busybox wget knows no more); on failure once more to keep the server's reason.
  fetch() {
    if wget -q -O "$2" "$1"; then echo 200; return; fi
    wget -q --content-on-error -O "$2" "$1" 2>/dev/null || :
    echo error
  }
else
  die "needs curl or wget to download"
fi

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t gobuild)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# get URL FILE: download, or stop with what the server said.
get() {
  status=$(fetch "$1" "$2")
  [ "$status" = 200 ] && return 0
  say "$1: failed ($status). The server said:"
  [ -s "$2" ] && sed -n '1,30p' "$2" >&2
  exit 1
}

# The hex of the 20 SHA-256 bytes in a sum: "0" + unpadded base64url (see the sum format).
sum_hex() {
  printf '%s\n' "${1#0}" | awk '{
    a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    bits = 0; n = 0; out = ""
    for (i = 1; i <= length($0); i++) {
      v = index(a, substr($0, i, 1)) - 1
      bits = bits * 64 + v; n += 6
      if (n >= 8) { n -= 8; b = int(bits / 2 ^ n); bits -= b * 2 ^ n; out = out sprintf("%02x", b) }
    }
    print out
  }'
}

sha256_hex() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1"
  elif command -v sha256 >/dev/null 2>&1; then sha256 -q "$1"
  else die "needs sha256sum or shasum to check the download"
  fi | cut -c1-40
}

build="$GOBUILD_BASE$GOBUILD_PATH$goos-$goarch-$GOBUILD_GOVERSION/"
say "$GOBUILD_WHAT for $goos/$goarch with $GOBUILD_GOVERSION (a first request builds it: this can take minutes)"
get "${build}record" "$tmp/record"
read -r r_mod r_version r_dir r_goos r_goarch r_goversion r_size r_sum r_variant < "$tmp/record" || :
[ "$r_goos/$r_goarch/$r_goversion" = "$goos/$goarch/$GOBUILD_GOVERSION" ] ||
  die "the server's record is for another build: $(cat "$tmp/record")"
case $r_sum in
  *[!A-Za-z0-9_-]*) die "bad sum in the server's record: $r_sum" ;;
  0???????????????????????????) ;;
  *) die "bad sum in the server's record: $r_sum" ;;
esac

get "$build$r_sum/$GOBUILD_FILE" "$tmp/binary"
want=$(sum_hex "$r_sum")
got=$(sha256_hex "$tmp/binary")
size=$(wc -c < "$tmp/binary" | tr -d ' ')
if [ "$got" != "$want" ] || [ "$size" != "$r_size" ]; then
  die "REFUSED: the download is not the logged build (sha256 prefix $got, $size bytes; expected $want, $r_size bytes from sum $r_sum). Nothing was installed."
fi

dir=${BINDIR:-${PREFIX:-$HOME/.local}/bin}
mkdir -p -- "$dir"
cp -- "$tmp/binary" "$dir/.$GOBUILD_NAME.gobuild-install"
chmod 755 "$dir/.$GOBUILD_NAME.gobuild-install"
mv -f -- "$dir/.$GOBUILD_NAME.gobuild-install" "$dir/$GOBUILD_NAME"
say "installed $dir/$GOBUILD_NAME ($r_mod@$r_version, sum $r_sum)"
case ":${PATH:-}:" in
  *":$dir:"*) ;;
  *) say "$dir is not in your PATH; add it, or run $dir/$GOBUILD_NAME" ;;
esac
