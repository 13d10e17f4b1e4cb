#!/usr/bin/env bash
# Installs sandbox from this checkout and proves it works offline, end to end: a loopback
# registry with a generated busybox image stands in for Docker Hub; sandbox pulls from it and
# runs a command in a project dir, as an ordinary (rootless) user.
#
#   scripts/install.sh            # as yourself (uses sudo for apt), or as root
#
# Installs to ~/.local/bin (as root: /usr/local/bin). Run as root, the demo runs as the
# unprivileged user $SANDBOX_TEST_USER (default sandbox-test), created if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-packages.sh

cargo build --release --locked
if [ "$(id -u)" = 0 ]; then bindir=/usr/local/bin; else bindir=$HOME/.local/bin; fi
install -D -m 0755 target/release/sandbox "$bindir/sandbox"
echo "installed $bindir/sandbox"
# Ubuntu 23.10+ lets only programs whose AppArmor profile says `userns` make a user namespace
# (kernel.apparmor_restrict_unprivileged_userns = 1): give sandbox one, as podman and
# bubblewrap ship theirs.
if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ] && command -v apparmor_parser >/dev/null; then
    sudo_if_needed=(); [ "$(id -u)" = 0 ] || sudo_if_needed=(sudo)
    name=sandbox-$(echo "$bindir" | tr / _)
    printf 'abi <abi/4.0>,\ninclude <tunables/global>\n\nprofile %s %s/sandbox flags=(unconfined) {\n  userns,\n  include if exists <local/%s>\n}\n' \
        "$name" "$bindir" "$name" | "${sudo_if_needed[@]}" tee "/etc/apparmor.d/$name" >/dev/null
    "${sudo_if_needed[@]}" apparmor_parser -r "/etc/apparmor.d/$name"
    echo "installed the AppArmor profile /etc/apparmor.d/$name (it lets sandbox make user namespaces)"
fi
# Shell completions (the checked-in scripts; they ask the binary for toolchains and ids).
if [ "$(id -u)" = 0 ]; then
    bash_dir=/usr/share/bash-completion/completions; zsh_dir=/usr/local/share/zsh/site-functions; fish_dir=/usr/share/fish/vendor_completions.d
else
    bash_dir=${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions; zsh_dir=${XDG_DATA_HOME:-$HOME/.local/share}/zsh/site-functions; fish_dir=${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions
fi
install -D -m 0644 completions/sandbox.bash "$bash_dir/sandbox"
install -D -m 0644 completions/_sandbox "$zsh_dir/_sandbox"
install -D -m 0644 completions/sandbox.fish "$fish_dir/sandbox.fish"
echo "installed completions for bash ($bash_dir), zsh ($zsh_dir) and fish ($fish_dir)"
# Man pages (checked in under man/, generated from the same definitions as --help).
if [ "$(id -u)" = 0 ]; then man_dir=/usr/local/share/man/man1; else man_dir=${XDG_DATA_HOME:-$HOME/.local/share}/man/man1; fi
install -D -m 0644 -t "$man_dir" man/*.1
echo "installed man pages in $man_dir (man sandbox, man sandbox-run, ...)"

work=$(mktemp -d /tmp/sandbox-demo.XXXXXX)
chmod 0755 "$work"
port=$(shuf -i 20000-40000 -n 1)
registry_pid=$(scripts/start-registry.sh "$port" "$work/registry")
trap 'kill "$registry_pid" 2>/dev/null || true' EXIT
scripts/make-image.sh "http://127.0.0.1:$port" library/busybox latest

as_user() {
    if [ "$(id -u)" = 0 ]; then
        local user=${SANDBOX_TEST_USER:-sandbox-test}
        local home; home=$(getent passwd "$user" | cut -d: -f6)
        chown "$user:" "$work"
        runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$work" PATH="$bindir:/usr/bin:/bin" "$@"
    else
        "$@"
    fi
}
store=$work/store
as_user "$bindir/sandbox" --root "$store" pull "127.0.0.1:$port/library/busybox"
as_user "$bindir/sandbox" --root "$store" images
as_user "$bindir/sandbox" --root "$store" df
project=$work/project
mkdir -p "$project"
[ "$(id -u)" = 0 ] && chown "${SANDBOX_TEST_USER:-sandbox-test}:" "$project"
cat > "$project/sandbox.toml" <<TOML
setup = ["echo 'prepared once by the setup step' > /etc/motd"]
[toolchain]
image = "127.0.0.1:$port/library/busybox"
[network]
mode = "none"
TOML
[ "$(id -u)" = 0 ] && chown "${SANDBOX_TEST_USER:-sandbox-test}:" "$project/sandbox.toml"
for _ in 1 2; do
    (cd "$project" && as_user "$bindir/sandbox" --root "$store" run -- \
        sh -c 'cat /etc/motd; echo "inside: $(id -un) in $(pwd) on $(hostname)"; echo hello > made-inside')
done
ls -l "$project/made-inside"
echo "demo done: sandbox pulled from a loopback registry into $store and ran a command in $project"
