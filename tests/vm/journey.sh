#!/bin/sh
# A new user's first hour on a real host, run at boot in a guest of tests/vm.rs (as root,
# which installs the binary as scripts/install.sh would, then acts only as the user `dev`
# through `su -`, a login with its systemd session). Each check prints one line:
#   ok NAME: what was seen          FAIL NAME: what went wrong
# tests/vm.rs fails on any FAIL line and on any check that printed no line.
# The scripts run in dev's shell, so what they expand is expanded there.
# shellcheck disable=SC2016
set -u
job=/mnt/job
# shellcheck disable=SC1091
. "$job/journey.env"    # REGISTRY_IP, REGISTRY (its host:port), JAVA_IMAGE, LAYERS_IMAGE, BUSYBOX_IMAGE
install -m 0755 "$job/sandbox" /usr/local/bin/sandbox
echo "$REGISTRY_IP registry.test" >>/etc/hosts

say() { # STATUS NAME DETAIL...
    status=$1 name=$2; shift 2
    echo "$status $name: $(echo "$*" | tr '\n' ' ' | cut -c1-600)"
}
# as_dev SCRIPT: runs SCRIPT in a login shell of dev's; its output on stdout, rc kept.
as_dev() { su - dev -c "$1" 2>&1; }
# check NAME SCRIPT GREP: ok when SCRIPT succeeds and its output matches GREP (a grep -E pattern).
check() {
    name=$1 script=$2 pattern=$3
    out=$(as_dev "$script"); rc=$?
    if [ "$rc" = 0 ] && printf '%s\n' "$out" | grep -Eq -- "$pattern"; then
        say ok "$name" "$(printf '%s\n' "$out" | grep -E -m1 -- "$pattern")"
    else
        say FAIL "$name" "rc $rc, wanted /$pattern/: $out"
    fi
}

say ok host "$(uname -r), systemd $(systemctl --version | head -1 | cut -d' ' -f2), $(stat -fc %T /sys/fs/cgroup), first name server $(grep -m1 '^nameserver' /etc/resolv.conf | cut -d' ' -f2)"

# The user config: the registry as docker.io's mirror (plain HTTP, as a company mirror may be).
as_dev "mkdir -p ~/.config/sandbox ~/src/app && cat > ~/.config/sandbox/config.toml" <<TOML
[[registry]]
prefix = "docker.io"
[[registry.mirror]]
location = "$REGISTRY"
insecure = true
[[registry]]
prefix = "$REGISTRY"
location = "$REGISTRY"
insecure = true
TOML

check doctor 'sandbox doctor' '^ok +overlay'
check doctor-cgroups 'sandbox doctor' '^ok +cgroups +cgroup v2'
check doctor-relay 'sandbox doctor' '^ok +network relay'
check pull-through-mirror "sandbox pull docker.io/$JAVA_IMAGE" 'sha256:'

# The project, as a Java developer clones it: a pom, a wrapper script, sandbox.toml.
as_dev "cd ~/src/app && mkdir -p src/main/java/demo .mvn && cat > sandbox.toml" <<'TOML'
setup = ["mkdir -p /opt/java && ln -sfn /usr/lib/jvm/java-17-openjdk-amd64 /opt/java/openjdk"]
[toolchain]
name = "java"
version = "17"
[env]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOML
cp "$job/pom.xml" /home/dev/src/app/pom.xml
cp "$job/mvnw" /home/dev/src/app/mvnw
printf '%s\n' '-Dmaven.repo.local=/usr/share/maven-repo' >/home/dev/src/app/.mvn/maven.config
cat >/home/dev/src/app/src/main/java/demo/Hello.java <<'JAVA'
package demo;
public class Hello { public static void main(String[] a) { System.out.println("built by maven on " + System.getProperty("java.version")); } }
JAVA
chown -R dev: /home/dev/src
chmod 0755 /home/dev/src/app/mvnw

check run-in-project 'cd ~/src/app && sandbox run -- sh -c "pwd; ls"' "^/home/dev/src/app\$"
check mvnw 'cd ~/src/app && sandbox run -- ./mvnw -o -q package && stat -c "%U %n" target/app-1.0.jar' 'dev target/app-1.0.jar$'
check java-runs-the-jar 'cd ~/src/app && sandbox run -- java -cp target/app-1.0.jar demo.Hello' '^built by maven on 17'
check enter-in-a-pty 'cd ~/src/app && printf "echo in=\$(pwd) tty=\$(tty)\nexit\n" | script -qec "sandbox enter" /dev/null' 'in=/home/dev/src/app tty=/dev/pts/'
check kernel-overlay 'cd ~/src/app && sandbox -v run -- true' 'runs on kernel overlayfs'
check kernel-overlay-80-layers "cd ~/src/app && sandbox -v run --image $REGISTRY/$LAYERS_IMAGE -- cat /layer80" 'runs on kernel overlayfs'
check cgroup-namespace 'cd ~/src/app && sandbox run --memory 512m -- cat /proc/self/cgroup' '^0::/$'
check jvm-heap-under-512m 'cd ~/src/app && sandbox run --memory 512m -- java -XX:+PrintFlagsFinal -version' 'MaxHeapSize += 134217728 '
# A command joining a running sandbox sees the same limits (the project's own, in sandbox.toml).
as_dev "mkdir -p ~/src/limited && sed 's/^\\[env\\]/[limits]\\nmemory = \"512m\"\\n[env]/' ~/src/app/sandbox.toml > ~/src/limited/sandbox.toml"
as_dev 'cd ~/src/limited && (sandbox run -- sh -c "touch /tmp/first up; sleep 300" >/dev/null 2>&1 &) ; for i in $(seq 600); do [ -e up ] && break; sleep 0.5; done'
# (Only a command that joined it sees the first one's /tmp.)
check jvm-heap-when-joined 'cd ~/src/limited && sandbox run -- sh -c "test -e /tmp/first && java -XX:+PrintFlagsFinal -version"' 'MaxHeapSize += 134217728 '
as_dev 'cd ~/src/limited && sandbox stop -t 1 >/dev/null 2>&1'
check memory-kill 'cd ~/src/app && sandbox run --memory 64m -- sh -c "head -c 300m /dev/zero | tail > /dev/null"; echo rc=$?' 'killed: out of memory'
check memory-kill-rc 'cd ~/src/app && sandbox run --memory 64m -- sh -c "head -c 300m /dev/zero | tail > /dev/null"; echo rc=$?' '^rc=137$'
# Behind systemd-resolved (127.0.0.53, as on Ubuntu and Fedora), names resolve inside: the
# guest's /etc/hosts names the registry, which resolved answers from.
if grep -q '^nameserver 127.0.0.53' /etc/resolv.conf; then
    check names-resolve 'cd ~/src/app && sandbox run -- getent hosts registry.test' "^$REGISTRY_IP +registry.test"
fi
# Mobility, on a small project of its own (the JDK would be half a gigabyte each way).
as_dev "mkdir -p ~/src/tool && cat > ~/src/tool/sandbox.toml" <<TOML
setup = ["echo prepared > /etc/tool-ready"]
[toolchain]
image = "$REGISTRY/$BUSYBOX_IMAGE"
TOML
check export "cd ~/src/tool && sandbox export -o ~/tool.tar && tar -tf ~/tool.tar" 'index.json$'
check push "cd ~/src/tool && sandbox push $REGISTRY/dev/tool:1" 'sha256:'
check pull-pushed "sandbox pull $REGISTRY/dev/tool:1 && sandbox run --image $REGISTRY/dev/tool:1 -- cat /etc/tool-ready" '^prepared$'
echo "journey done"
