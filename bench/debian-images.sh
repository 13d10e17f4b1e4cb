#!/usr/bin/env bash
# Builds the toolchain root file systems bench/daily.sh serves to sandbox and podman alike,
# from Debian's package mirror (as root: debootstrap and chroot), and keeps them as tar files:
#   CACHE/jdk.tar        Debian 12 with openjdk-17-jdk-headless
#   CACHE/php.tar        Debian 12 with php-cli and python3-pip (for the setup-step pip install)
#   CACHE/jdk-maven.tar  the JDK with Maven and the plugins a `package` build needs, from
#                        Debian's maven-repo (tests/e2e/vm.rs: its guests reach no mirror)
#
#   bench/debian-images.sh [CACHE [NAME...]]   # default: $SANDBOX_BENCH_CACHE or
#                                              # /var/tmp/sandbox-bench-cache; jdk and php
#
# A tar that exists is kept: delete it to build it again.
set -euo pipefail
cache=${1:-${SANDBOX_BENCH_CACHE:-/var/tmp/sandbox-bench-cache}}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(jdk php)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "error: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "error: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$cache"

base=$cache/bookworm-minbase
if [ ! -f "$base/etc/debian_version" ]; then
    rm -rf "$base.partial"
    debootstrap --variant=minbase bookworm "$base.partial" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { echo "error: debootstrap failed (see $cache/debootstrap.log): is $mirror reachable?" >&2; exit 1; }
    mv "$base.partial" "$base"
fi

# build NAME PACKAGES...: the base with PACKAGES installed, as CACHE/NAME.tar.
build() {
    local name=$1; shift
    [ -f "$cache/$name.tar" ] && return 0
    local root=$cache/$name.root
    rm -rf "$root"
    cp -a "$base" "$root"
    mount -t proc proc "$root/proc"
    local ok=0
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $* && apt-get clean && rm -rf /var/lib/apt/lists/*" \
        >"$cache/$name.log" 2>&1 || ok=$?
    umount "$root/proc"
    [ "$ok" = 0 ] || { echo "error: installing $* failed (see $cache/$name.log)" >&2; exit 1; }
    # Each tool makes its own /dev; the image needs none of the host's device nodes.
    find "$root/dev" -mindepth 1 -delete
    tar --numeric-owner --xattrs --sort=name -C "$root" -cf "$cache/$name.tar.partial" .
    mv "$cache/$name.tar.partial" "$cache/$name.tar"
    rm -rf "$root"
}
for name in "${names[@]}"; do
    case $name in
        jdk) build jdk openjdk-17-jdk-headless ;;
        php) build php php-cli python3-pip ;;
        jdk-maven) build jdk-maven openjdk-17-jdk-headless maven libmaven-compiler-plugin-java \
            libmaven-jar-plugin-java libmaven-resources-plugin-java libsurefire-java libmaven-install-plugin-java ;;
        *) echo "error: no image named $name (jdk, php, jdk-maven)" >&2; exit 1 ;;
    esac
    ls -la "$cache/$name.tar"
done
