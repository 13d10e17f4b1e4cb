#!/usr/bin/env bash
# Installs the Debian packages sandbox and its tests use, and, when run as root, creates the
# unprivileged user the end-to-end tests run as (with /etc/subuid and /etc/subgid ranges).
set -euo pipefail
packages=(uidmap docker-registry busybox-static curl ca-certificates gcc libc6-dev fuse-overlayfs passt slirp4netns debootstrap openssh-client python3 podman runc skopeo apache2-utils python3-venv python3-pip nftables)
# npm for the egress test: Debian's, unless the machine has one already (NodeSource's nodejs
# carries its own and conflicts with Debian's npm package).
command -v npm >/dev/null || packages+=(npm)
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The VM guests (tests/e2e/vm.rs): qemu from bookworm-backports (10.0, as this machine's
# qemu-utils), socat for the guest's one way out (qemu's guestfwd to the loopback registry),
# e2fsprogs for the disk made from a tree. SANDBOX_TEST_SKIP_VMS=1 needs none of them.
if [ -z "${SANDBOX_TEST_SKIP_VMS:-}" ]; then
    if ! command -v qemu-system-x86_64 >/dev/null || ! command -v socat >/dev/null; then
        codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
        if [ "$codename" = bookworm ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "deb http://deb.debian.org/debian bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/backports.list >/dev/null
        fi
        $sudo apt-get update -qq
        release=(); [ "$codename" = bookworm ] && release=(-t bookworm-backports)
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${release[@]}" qemu-system-x86 qemu-utils socat e2fsprogs >/dev/null
    fi
fi
# The Kubernetes schema checker the kube tests run (PyPI, pinned; its schemas are in the wheel).
tools=${SANDBOX_TEST_TOOLS:-/opt/sandbox-test-tools}
validator_version=1.37.0
if ! "$tools/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$validator_version"; then
    $sudo /usr/bin/python3 -m venv "$tools"
    $sudo "$tools/bin/pip" install -q "kubernetes-validate==$validator_version"
fi
if [ "$(id -u)" = 0 ]; then
    user=${SANDBOX_TEST_USER:-sandbox-test}
    id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
    grep -q "^$user:" /etc/subuid || usermod --add-subuids 100000-165535 "$user"
    grep -q "^$user:" /etc/subgid || usermod --add-subgids 100000-165535 "$user"
    # A second user with other subordinate ranges: prepared sandboxes must not depend on them.
    second=${SANDBOX_TEST_SECOND_USER:-sandbox-test2}
    id "$second" >/dev/null 2>&1 || useradd -m -s /bin/bash "$second"
    grep -q "^$second:" /etc/subuid || usermod --add-subuids 300000-365535 "$second"
    grep -q "^$second:" /etc/subgid || usermod --add-subgids 300000-365535 "$second"
    # A user whose home is reached through a symlink, as on Fedora Silverblue
    # (`/home -> var/home`); its home is also the one a test makes the project itself.
    linked=${SANDBOX_TEST_LINKED_USER:-sandbox-test-linked}
    mkdir -p /srv/sandbox-linked/var/home
    [ -L /srv/sandbox-linked/home ] || ln -s var/home /srv/sandbox-linked/home
    id "$linked" >/dev/null 2>&1 ||
        useradd -m -d "/srv/sandbox-linked/home/$linked" -s /bin/bash "$linked"
    grep -q "^$linked:" /etc/subuid || usermod --add-subuids 400000-465535 "$linked"
    grep -q "^$linked:" /etc/subgid || usermod --add-subgids 400000-465535 "$linked"
    # fuse-overlayfs (the fallback overlay) needs /dev/fuse, which Debian's udev rule makes
    # 0666; minimal machines and containers may leave it 0600.
    [ -c /dev/fuse ] && chmod 0666 /dev/fuse
    # pasta and slirp4netns open /dev/net/tun as the user; some machines leave it 0600.
    [ -c /dev/net/tun ] && chmod 0666 /dev/net/tun
fi
