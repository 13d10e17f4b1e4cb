//! Networking: the relay (the default), pasta and slirp4netns with published ports, DNS and
//! host loopback; none; the helper's lifetime; errors. Network tests talk only to loopback
//! and to namespaces they made.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::registry::free_port;
use crate::support::text;
use crate::support::{Registry, TestEnv};

const UDP_ECHO: &str = r#"
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    for (;;) {
        char buf[512];
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, len);
    }
}
"#;

/// Sends argv[3] to argv[1]:argv[2] over UDP and prints the reply (exit 1 without one in 2 s,
/// 2 when sending failed).
const UDP_ASK: &str = r#"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    struct timeval t = {2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
    if (sendto(s, argv[3], strlen(argv[3]), 0, (struct sockaddr *)&a, sizeof a) < 0) return 2;
    char buf[512];
    ssize_t n = recv(s, buf, sizeof buf - 1, 0);
    if (n <= 0) return 1;
    buf[n] = 0;
    printf("%s\n", buf);
    return 0;
}
"#;

/// Round trips as an RPC or keep-alive HTTP client makes them: both ends TCP_NODELAY, each
/// 8-byte message written as two halves (`roundtrip serve PORT`, `roundtrip ask ADDRESS PORT
/// COUNT [NAME:PORT]`).
const ROUNDTRIP: &str = include_str!("../probes/roundtrip.c");

struct Fixture {
    env: TestEnv,
    _registry: Registry,
    image: String,
}

fn fixture() -> Fixture {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(
        &env,
        "library/net",
        vec![
            crate::support::helper_entry("bin/udp-echo", "udp-echo", UDP_ECHO),
            crate::support::helper_entry("bin/udp-ask", "udp-ask", UDP_ASK),
            crate::support::helper_entry("bin/roundtrip", "roundtrip", ROUNDTRIP),
        ],
    );
    env.write("project/www/index.html", "hello from inside\n");
    Fixture {
        env,
        _registry: registry,
        image,
    }
}

fn require_tun() {
    let ok = std::fs::metadata("/dev/net/tun")
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006);
    assert!(ok, "/dev/net/tun must be usable by ordinary users for pasta and slirp4netns (scripts/host-packages.sh makes it 0666)");
}

impl Fixture {
    fn start(&self, network: &str, extra: &[&str], command: &[&str]) -> Child {
        require_tun();
        let mut args = vec!["run", "--network", network];
        args.extend_from_slice(extra);
        args.extend(["--image", self.image.as_str(), "--"]);
        args.extend_from_slice(command);
        self.env
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn run(&self, network: &str, extra: &[&str], command: &[&str]) -> std::process::Output {
        self.start(network, extra, command)
            .wait_with_output()
            .unwrap()
    }

    fn www(&self) -> String {
        self.env.path().join("project/www").display().to_string()
    }
}

fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(child: Child) -> String {
    crate::support::signal(child.id() as i32, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    text(&out.stderr)
}

/// The pid of the pool of warm networks serving `store` (`sandbox-warm STORE`).
fn pool_of(store: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let wanted = format!("sandbox-warm\0{store}\0");
        (cmdline == wanted.as_bytes())
            .then(|| e.file_name().to_str()?.parse().ok())
            .flatten()
    })
}

/// Helper processes whose command line mentions `needle`.
fn helpers_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| {
            c.split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| {
            (c.starts_with("pasta") || c.contains("/pasta ") || c.contains("slirp4netns"))
                && c.contains(needle)
        })
        .collect()
}

#[test]
fn a_server_inside_answers_on_a_published_tcp_port() {
    let f = fixture();
    for helper in ["relay", "pasta", "slirp4netns"] {
        let port = free_port();
        let publish = format!("{port}:80");
        let child = f.start(
            helper,
            &["-p", &publish],
            &["busybox", "httpd", "-f", "-p", "80", "-h", &f.www()],
        );
        let answer = eventually(&format!("{helper}: HTTP on 127.0.0.1:{port}"), || {
            http_get(port).filter(|a| a.contains("200"))
        });
        assert!(answer.contains("hello from inside"), "{helper}: {answer}");
        // `ps` shows what runs and where it is published, as podman's does.
        let ps = f.env.ok(&["ps"]);
        let row = ps.lines().nth(1).unwrap_or_default();
        assert!(
            ps.lines()
                .next()
                .is_some_and(|h| h.contains("COMMAND") && h.contains("PORTS"))
                && row.contains("busybox httpd -f -p 80 -h")
                && row.contains(&format!("127.0.0.1:{port}:80/tcp")),
            "{helper}: {ps}"
        );
        let json: serde_json::Value = serde_json::from_str(&f.env.ok(&["ps", "--json"])).unwrap();
        assert_eq!(json[0]["command"][1], "httpd", "{json}");
        stop(child);
    }
}

#[test]
fn a_udp_server_inside_echoes_through_a_published_udp_port() {
    let f = fixture();
    for helper in ["relay", "pasta", "slirp4netns"] {
        let port = free_port();
        let publish = format!("{port}:5353/udp");
        let child = f.start(helper, &["-p", &publish], &["/bin/udp-echo", "5353"]);
        // A fresh socket per try: datagrams sent before the server bound its port are lost.
        let echoed = eventually(&format!("{helper}: UDP echo on {port}"), || {
            let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .ok()?;
            socket.send_to(b"ping", ("127.0.0.1", port)).ok()?;
            let mut buf = [0u8; 16];
            let (n, _) = socket.recv_from(&mut buf).ok()?;
            Some(buf[..n].to_vec())
        });
        assert_eq!(echoed, b"ping", "{helper}");
        stop(child);
    }
}

/// A tiny HTTP server on the host's loopback, answering every connection with `body`.
fn host_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    port
}

/// An HTTP request with busybox nc (this static busybox's wget crashes); prints the status line.
fn probe(address: &str, port: u16) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc {address} {port} | head -1")
}

#[test]
fn the_hosts_loopback_is_unreachable_unless_asked_for() {
    let f = fixture();
    let port = host_server("host-loopback-service");
    // With --host-loopback, host.containers.internal reaches the host's 127.0.0.1 services.
    for helper in ["relay", "pasta", "slirp4netns"] {
        let script = format!("address=$(grep host.containers.internal /etc/hosts | cut -f1); echo \"at $address\"; {}", probe("$address", port));
        let out = f.run(helper, &["--host-loopback"], &["sh", "-c", &script]);
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("HTTP/1.0 200 OK"),
            "{helper} with --host-loopback: {stdout} {}",
            text(&out.stderr)
        );
    }
    // Without it: no hosts entry, and slirp4netns refuses its host address (10.0.2.2 is
    // virtual, so the try never leaves this machine).
    let out = f.run(
        "slirp4netns",
        &[],
        &[
            "sh",
            "-c",
            &format!(
                "grep -c host.containers.internal /etc/hosts; {}",
                probe("10.0.2.2", port)
            ),
        ],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("0\n") && !stdout.contains("200 OK"),
        "slirp4netns reached the host's loopback by default: {stdout} {}",
        text(&out.stderr)
    );
    // The relay's host address is virtual too: reset, never dialed on the host.
    let out = f.run(
        "relay",
        &[],
        &[
            "sh",
            "-c",
            &format!(
                "grep -c host.containers.internal /etc/hosts; {}",
                probe("169.254.1.2", port)
            ),
        ],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("0\n") && !stdout.contains("200 OK"),
        "the relay reached the host's loopback by default: {stdout} {}",
        text(&out.stderr)
    );
    // pasta's host address is the real gateway's, so a try would leave the machine: check
    // the mechanism instead, while a sandbox runs.
    let child = f.start(
        "pasta",
        &[],
        &[
            "sh",
            "-c",
            "grep -c host.containers.internal /etc/hosts; sleep 5",
        ],
    );
    let flags = eventually("pasta to run", || {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.starts_with("pasta") || cmd.contains("/pasta "))
                .then_some(cmd)
                // Ours: its pid file lives in a sandbox-pasta-<container> dir.
                .filter(|c| c.contains("/sandbox-pasta-"))
        })
    });
    assert!(
        flags.contains("--no-map-gw"),
        "pasta maps the host's loopback by default: {flags}"
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stdout).starts_with("0\n"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The relay (the default network) with --host-loopback, so every try stays on this machine:
/// TCP to any port and UDP reach the host's services; a closed port, IPv6 and the host's
/// loopback without the flag fail at once; the sandbox's own loopback stays its own;
/// `--network-log` names each connection.
#[test]
fn the_relay_carries_tcp_and_udp_to_any_port_and_fails_at_once_where_it_cannot() {
    let f = fixture();
    let web = host_server("relayed-by-sandbox");
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = echo.send_to(&reply, from);
        }
    });
    let closed = free_port();
    let script = format!(
        "{}; udp-ask 169.254.1.2 {udp_port} hello; echo udp=$?; \
         nc -w 10 169.254.1.2 {closed} </dev/null; echo closed=$?; \
         nc -w 10 2001:db8::1 80 </dev/null; echo v6=$?; \
         busybox httpd -p 127.0.0.1:8080 -h {}; {}",
        probe("169.254.1.2", web),
        f.www(),
        probe("127.0.0.1", 8080)
    );
    let started = Instant::now();
    let out = f.run(
        "relay",
        &["--host-loopback", "--network-log", "net.jsonl"],
        &["sh", "-c", &script],
    );
    let took = started.elapsed();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"HTTP/1.0 200 OK"), "{stdout} {stderr}");
    assert!(
        stdout.contains("echo:hello\nudp=0\n"),
        "UDP through the relay: {stdout} {stderr}"
    );
    // A closed port is refused inside as outside: the opening waited for the real one.
    assert!(
        stdout.contains("udp=0\nclosed=1\nv6=1\n"),
        "a closed port and IPv6 fail: {stdout} {stderr}"
    );
    assert!(
        stderr.contains("Connection refused"),
        "the closed port is refused: {stderr}"
    );
    assert!(
        stderr.contains("Network is unreachable"),
        "IPv6 has no route: {stderr}"
    );
    assert!(
        stdout.trim_end().ends_with("HTTP/1.1 200 OK"),
        "the sandbox's own 127.0.0.1:8080 (busybox httpd) is its own: {stdout} {stderr}"
    );
    // Each failure is at once (their timeouts are 10 s each).
    assert!(took < Duration::from_secs(8), "took {took:?}: {stdout}");
    let log = std::fs::read_to_string(f.env.path().join("project/net.jsonl")).unwrap();
    assert!(
        log.contains(&format!(
            "\"kind\":\"tcp\",\"target\":\"169.254.1.2:{web}\""
        )) && log.contains(&format!(
            "\"kind\":\"udp\",\"target\":\"169.254.1.2:{udp_port}\""
        )) && log.contains(&format!(
            "169.254.1.2:{closed}\",\"allowed\":true,\"reason\""
        )),
        "{log}"
    );
    assert!(!log.contains("127.0.0.1:8080"), "{log}");

    // Without --host-loopback the host's address is refused, and nothing is dialed.
    let out = f.run(
        "relay",
        &[],
        &[
            "sh",
            "-c",
            &format!("{}; echo done", probe("169.254.1.2", web)),
        ],
    );
    assert_eq!(text(&out.stdout), "done\n", "{}", text(&out.stderr));
}

/// What the relay writes into the sandbox's namespace (over netlink, without nft) is the
/// ruleset its documentation shows, read back by the host's `nft` (as root, from outside).
#[test]
fn the_relays_rules_are_the_documented_ones() {
    assert!(
        crate::support::env::is_root(),
        "this test reads the sandbox's nftables rules with nsenter, which needs root"
    );
    let f = fixture();
    let mut child = f.start("relay", &[], &["sleep", "9.25"]);
    let pid = eventually("the sandbox's sleep", || {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            (cmdline == b"sleep\09.25\0")
                .then(|| e.file_name().to_str()?.parse::<u32>().ok())
                .flatten()
        })
    });
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "nft", "list", "ruleset"])
        .output()
        .expect("nsenter and nft (Debian: nftables) are needed to read the rules");
    child.kill().unwrap();
    child.wait().unwrap();
    let rules = text(&out.stdout);
    let lines: Vec<&str> = rules
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines,
        [
            "table ip sandbox {",
            "chain queue {",
            "type filter hook prerouting priority raw; policy accept;",
            "ip daddr != 127.0.0.0/8 tcp flags syn / fin,syn,rst,ack queue num 0",
            "}",
            "chain relay {",
            "type filter hook prerouting priority mangle; policy accept;",
            "meta mark 0x0000005b reject with tcp reset",
            "ip daddr != 127.0.0.0/8 tcp flags syn / fin,syn,rst,ack tproxy to :1",
            "ip daddr != 127.0.0.0/8 meta l4proto udp meta mark != 0x0000005c tproxy to :1",
            "ip daddr != 127.0.0.0/8 icmp type echo-request reject with icmp host-prohibited",
            "}",
            "}",
        ],
        "{rules} {}",
        text(&out.stderr)
    );
}

/// Under a kernel that cannot relay (planted: the record the first run writes says so), the
/// default network is pasta; the record says `ok` here, written by the first run.
#[test]
fn the_default_network_is_pasta_where_the_kernel_cannot_relay() {
    let f = fixture();
    let run = || {
        let out = f.env.run(&[
            "--verbose",
            "run",
            "--image",
            &f.image,
            "--",
            "cat",
            "/etc/resolv.conf",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (resolv, said) = run();
    assert!(
        resolv.contains("relayed") && said.contains("the network relay ready"),
        "{resolv} {said}"
    );
    let record = f.env.store().join("relay-support");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        format!("{} ok\n", release.trim())
    );
    f.env.write(
        &record
            .strip_prefix(f.env.path())
            .unwrap()
            .display()
            .to_string(),
        &format!("{} no: planted by the test\n", release.trim()),
    );
    let (resolv, said) = run();
    assert!(
        !resolv.contains("relayed") && said.contains("pasta ready"),
        "{resolv} {said}"
    );
}

/// Code inside opening connections and UDP flows by the hundred holds the relay's threads only
/// while they last: afterwards it still relays (all on this machine, with --host-loopback).
#[test]
fn a_flood_of_connections_and_flows_does_not_take_the_relay_down() {
    let f = fixture();
    let web = host_server("still-relaying");
    // A host service that holds every connection until its client closes.
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in sink.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let quiet_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = quiet_udp.local_addr().unwrap().port();
    let script = format!(
        "for i in $(seq 700); do (sleep 2 | nc 169.254.1.2 {sink_port} >/dev/null 2>&1 &); done; \
         for i in $(seq 300); do (udp-ask 169.254.1.2 {udp_port} flow$i >/dev/null 2>&1 &); done; \
         sleep 4; {}",
        probe("169.254.1.2", web)
    );
    let out = f.run("relay", &["--host-loopback"], &["sh", "-c", &script]);
    assert_eq!(
        text(&out.stdout).trim_end(),
        "HTTP/1.0 200 OK",
        "{}",
        text(&out.stderr)
    );
    // The flows that fit were relayed (at most 256 at once), the rest dropped.
    quiet_udp
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut received = 0;
    while quiet_udp.recv_from(&mut buf).is_ok() {
        received += 1;
    }
    assert!((1..=256).contains(&received), "{received} datagrams");
}

#[test]
fn network_none_reaches_nothing_but_loopback() {
    let f = fixture();
    let out = f.run("none", &[], &["sh", "-c", "ls /sys/class/net; nc -w 2 10.0.2.2 80 </dev/null && echo reached; nc -w 2 127.0.0.1 1 </dev/null && echo reached-lo; echo done"]);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("lo\n"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("done") && !stdout.contains("reached"),
        "{stdout} {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("unreachable"),
        "no route out: {}",
        text(&out.stderr)
    );
}

/// Answers every A query with 10.1.2.3 on 127.0.0.1:53.
fn dns_responder() -> Option<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:53").ok()?;
    let s = socket.try_clone().ok()?;
    std::thread::spawn(move || loop {
        let mut q = [0u8; 512];
        let Ok((n, from)) = s.recv_from(&mut q) else {
            return;
        };
        if n < 12 {
            continue;
        }
        let mut end = 12;
        while end < n && q[end] != 0 {
            end += q[end] as usize + 1;
        }
        let question_end = (end + 5).min(n);
        let mut r = q[..question_end].to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        r[6] = 0;
        r[7] = 1;
        r[8..12].fill(0);
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
        let _ = s.send_to(&r, from);
    });
    Some(socket)
}

#[test]
fn names_resolve_through_the_helpers_dns_forwarder() {
    assert!(
        crate::support::env::is_root(),
        "this test answers DNS on 127.0.0.1:53 and gives sandbox a private /etc/resolv.conf naming it, which needs root; `SANDBOX_TEST_SKIP_DNS=1 scripts/test.sh` reports it as skipped"
    );
    let f = fixture();
    let _dns =
        dns_responder().expect("127.0.0.1:53 is taken on this machine; the DNS test needs it");
    // How: sandbox runs in a mount namespace (made by unshare as root, then setpriv drops to the
    // test user) whose /etc/resolv.conf names our responder; the helpers forward to the host's
    // first name server, which is then it.
    let resolv = f.env.write("resolv.conf", "nameserver 127.0.0.1\n");
    for helper in ["relay", "pasta", "slirp4netns"] {
        let inner = f.env.command(&[
            "run",
            "--network",
            helper,
            "--image",
            &f.image,
            "--",
            "nslookup",
            "sandbox-dns-test.example",
        ]);
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
        ])
        .arg(&resolv);
        cmd.arg(inner.get_program()).args(inner.get_args());
        cmd.env_clear().envs(
            inner
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        );
        cmd.current_dir(f.env.path().join("project"));
        let out = cmd.output().unwrap();
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("10.1.2.3"),
            "{helper}: {stdout} {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_helper_never_outlives_its_sandbox() {
    let f = fixture();
    let port = free_port();
    let marker = format!("{port}:80");
    for i in 0..100 {
        let helper = if i % 2 == 0 { "pasta" } else { "slirp4netns" };
        let out = f.run(helper, &["-p", &marker], &["true"]);
        assert!(out.status.success(), "run {i}: {}", text(&out.stderr));
    }
    // The last helper may still be freeing its memory after SIGKILL (sandbox does not wait for
    // that); none may stay.
    // pasta carries the port in its arguments, slirp4netns its API socket in the store.
    let store = f.env.store().display().to_string();
    eventually("no helper left after 100 runs", || {
        (helpers_with(&port.to_string()).is_empty() && helpers_with(&store).is_empty())
            .then_some(())
    });

    // kill -9 of sandbox itself takes the helper (and the container) with it.
    for helper in ["pasta", "slirp4netns"] {
        let port = free_port();
        let publish = format!("{port}:80");
        let mut child = f.start(
            helper,
            &["-p", &publish],
            &["busybox", "httpd", "-f", "-p", "80", "-h", &f.www()],
        );
        eventually("the server to answer", || http_get(port));
        let needle = if helper == "pasta" {
            port.to_string()
        } else {
            store.clone()
        };
        assert!(
            !helpers_with(&needle).is_empty(),
            "{helper} should be running"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        eventually(&format!("{helper} to end after kill -9"), || {
            helpers_with(&needle).is_empty().then_some(())
        });
        eventually("the container to end", || {
            f.env.ok(&["ps"]).lines().count().eq(&1).then_some(())
        });
    }

    // The relay has no helper: its keeper holds the published port, and goes with kill -9.
    let port = free_port();
    let mut child = f.start(
        "relay",
        &["-p", &format!("{port}:80")],
        &["busybox", "httpd", "-f", "-p", "80", "-h", &f.www()],
    );
    eventually("the relayed server to answer", || http_get(port));
    child.kill().unwrap();
    child.wait().unwrap();
    eventually("the relay's keeper to free the port after kill -9", || {
        TcpListener::bind(("127.0.0.1", port)).ok().map(drop)
    });
}

/// The network belongs to the container, not to its first command: a session that joined keeps
/// the published port and the helper when the command that started the container ends, and the
/// helper ends with the container's last process.
#[test]
fn a_joined_session_keeps_the_network_after_the_first_command_ends() {
    let f = fixture();
    for helper in ["relay", "pasta", "slirp4netns"] {
        let port = free_port();
        let publish = format!("{port}:80");
        let first = f.start(helper, &["-p", &publish], &["sh", "-c", "echo up; sleep 2"]);
        eventually(&format!("{helper}: the first command to start"), || {
            (f.env.ok(&["ps"]).lines().count() == 2).then_some(())
        });
        // A join cannot change the running container's network: refused, and said why.
        let other = free_port().to_string() + ":80";
        let out = f.run(helper, &["-p", &other], &["true"]);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{helper}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("is already running with network"),
            "{helper}: {}",
            text(&out.stderr)
        );
        // Joins the running container (same project, same network): a server on the port.
        let second = f.start(
            helper,
            &["-p", &publish],
            &["busybox", "httpd", "-f", "-p", "80", "-h", &f.www()],
        );
        eventually(&format!("{helper}: the joined server to answer"), || {
            http_get(port).filter(|a| a.contains("200"))
        });
        let out = first.wait_with_output().unwrap();
        assert!(out.status.success(), "{helper}: {}", text(&out.stderr));
        // After the first command ended, the joined server answers through the helper, every
        // time over two seconds: a helper the first command's end took down is gone by then.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let answer = http_get(port);
            assert!(
                answer.as_deref().is_some_and(|a| a.contains("hello from inside")),
                "{helper}: the joined session lost the network when the first command ended: {answer:?}"
            );
        }
        stop(second);
        eventually(&format!("{helper} to end with the container"), || {
            helpers_with(&port.to_string()).is_empty().then_some(())
        });
        eventually("the container to end", || {
            (f.env.ok(&["ps"]).lines().count() == 1).then_some(())
        });
    }
}

#[test]
fn a_busy_port_a_missing_helper_and_a_failing_helper_are_explained() {
    let f = fixture();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = f.run("pasta", &["-p", &format!("{port}:80")], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains(&format!(
            "published port 127.0.0.1:{port}:80/tcp is not available on the host"
        )),
        "{}",
        text(&out.stderr)
    );
    // Refused before pid 1 was made: what was made for it is gone too.
    assert_eq!(f.env.store_entries("containers"), Vec::<String>::new());
    let out = f.run("pasta", &["-p", "8000-8010:80"], &["true"]);
    assert!(
        text(&out.stderr).contains("port ranges are not supported"),
        "{}",
        text(&out.stderr)
    );

    // A PATH with the id-map helpers, and a pasta that fails the way a broken one would.
    let bin = f.env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["newuidmap", "newgidmap"] {
        std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.join(tool)).unwrap();
    }
    let path = bin.display().to_string();
    let run_with_path = |network: &str| {
        f.env
            .command(&[
                "run",
                "--network",
                network,
                "--image",
                &f.image,
                "--",
                "true",
            ])
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let out = run_with_path("pasta");
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("`pasta` is not installed") && err.contains("apt-get install passt"),
        "{err}"
    );

    std::fs::write(
        bin.join("pasta"),
        "#!/bin/sh\necho 'pasta: cannot open tap device: boom' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("pasta"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    f.env.give_to_user(&bin);
    let out = run_with_path("pasta");
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("the network helper `pasta` failed")
            && err.contains("cannot open tap device: boom"),
        "{err}"
    );
    eventually("the failed container to go", || {
        f.env.ok(&["ps"]).lines().count().eq(&1).then_some(())
    });
    drop(taken);
}

/// The default network is a warm one: pasta prepared ahead of time by the store's pool. A run
/// typed after the previous one takes it; 100 runs leave nothing but the pool's prepared one;
/// two at once never share a namespace; kill -9 of sandbox ends the pasta it took, and kill -9
/// of the pause process leaves no prepared one.
#[test]
fn warm_networks_are_taken_once_and_never_outlive_their_sandbox_or_the_pause_process() {
    let f = fixture();
    let verbose_run = |command: &[&str]| {
        let mut args = vec![
            "--verbose",
            "run",
            "--network",
            "pasta",
            "--image",
            &f.image,
            "--",
        ];
        args.extend_from_slice(command);
        f.env.run(&args)
    };
    // The first run starts the pool; the next, typed a moment later, takes a prepared pasta
    // and has the network (an interface besides lo).
    assert!(verbose_run(&["true"]).status.success());
    // The pool says how many it holds ready.
    let ready_file = f.env.store().join("warm.ready");
    let ready = || {
        eventually("a prepared pasta", || {
            let text = std::fs::read_to_string(&ready_file).ok()?;
            (text.trim() == "1").then_some(())
        })
    };
    ready();
    // This store's pool (others' run beside this test): its pastas carry its pid.
    let store = f.env.store().display().to_string();
    let pool = eventually("the store's pool", || pool_of(&store));
    let warm = || helpers_with(&format!("sandbox-pasta-warm-{pool}-"));
    let out = verbose_run(&["cat", "/proc/net/dev"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("a warm pasta"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).lines().count() > 3,
        "{}",
        text(&out.stdout)
    );

    for i in 0..100 {
        let out = f.run("pasta", &[], &["true"]);
        assert!(out.status.success(), "run {i}: {}", text(&out.stderr));
    }
    eventually("only the prepared pasta left after 100 runs", || {
        (warm().len() <= 1).then_some(())
    });

    // Two at once: namespaces of their own.
    let ns = ["sh", "-c", "readlink /proc/self/ns/net; sleep 1"];
    let (a, b) = (f.start("pasta", &[], &ns), f.start("pasta", &[], &ns));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    assert_ne!(text(&a.stdout), text(&b.stdout));

    // kill -9 of sandbox: the pasta it took ends with its container.
    ready();
    let prepared = warm();
    assert_eq!(prepared.len(), 1, "{prepared:?}");
    let mut child = f.start("pasta", &[], &["sleep", "30"]);
    eventually("the container to run", || {
        (f.env.ok(&["ps"]).lines().count() == 2).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // The run took the prepared one: it ends with the container.
    eventually("the taken pasta to end", || {
        (!warm().contains(&prepared[0])).then_some(())
    });
    eventually("the container to end", || {
        f.env.ok(&["ps"]).lines().count().eq(&1).then_some(())
    });

    // kill -9 of the pause process: the pool ends its prepared pasta and leaves.
    ready();
    assert!(!warm().is_empty(), "a pasta is prepared");
    let pid: i32 = std::fs::read_to_string(f.env.store().join("pause.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    crate::support::signal(pid, libc::SIGKILL);
    eventually("no prepared pasta after the pause process died", || {
        warm().is_empty().then_some(())
    });
    eventually("the pool's socket and its word on readiness gone", || {
        (!f.env.store().join("warm.sock").exists() && !ready_file.exists()).then_some(())
    });
}

/// The host's end of `roundtrip`: a server on its loopback answering each 8-byte message with
/// two 4-byte writes, TCP_NODELAY on.
fn host_roundtrip_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut message = [0u8; 8];
                while s.read_exact(&mut message).is_ok() {
                    message[0] = b'R';
                    if s.write_all(&message[..4]).is_err() || s.write_all(&message[4..]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// The host's end of `roundtrip ask`: `count` round trips to 127.0.0.1:`port` (retrying the
/// connection while the sandbox starts), each one's time.
fn host_roundtrips(port: u16, count: usize) -> Vec<Duration> {
    let mut s = eventually("the published port to answer a round trip", || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_nodelay(true).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        // A published port accepts before the server inside listens: a first round trip
        // proves the whole path.
        let mut reply = [0u8; 8];
        s.write_all(b"Qwarm00").ok()?;
        s.write_all(b"\0").ok()?;
        s.read_exact(&mut reply).ok()?;
        (reply[0] == b'R').then_some(s)
    });
    (0..count)
        .map(|i| {
            let message = format!("Q{:06}\0", i);
            let mut reply = [0u8; 8];
            let started = Instant::now();
            s.write_all(&message.as_bytes()[..4]).unwrap();
            s.write_all(&message.as_bytes()[4..]).unwrap();
            s.read_exact(&mut reply).unwrap();
            assert_eq!(&reply[1..], &message.as_bytes()[1..], "a wrong reply");
            started.elapsed()
        })
        .collect()
}

fn median(mut times: Vec<Duration>) -> Duration {
    assert!(!times.is_empty(), "no round trips were timed");
    times.sort();
    times[times.len() / 2]
}

/// `roundtrip ask`'s output: one time in microseconds a line.
fn times_printed(out: &std::process::Output, path: &str) -> Vec<Duration> {
    assert!(
        out.status.success(),
        "{path}: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|l| Duration::from_micros(l.trim().parse().unwrap()))
        .collect()
}

/// A small request answered by a small reply must not wait: through the relay, the
/// forwarder and a published port, a round trip whose ends set TCP_NODELAY and write each
/// message in two pieces stalled 200 ms a direction (the relay sent with MSG_MORE) or 40 ms
/// (it applied Nagle again to what it relayed). On loopback a round trip takes well under a
/// millisecond; 20 ms leaves room for a busy machine and none for either stall.
#[test]
fn small_round_trips_are_never_held_back_on_any_path() {
    let f = fixture();
    let limit = Duration::from_millis(20);
    let rounds = "20";
    let port = host_roundtrip_server();

    // The relay: inside to the host's loopback service (host.containers.internal).
    let script = format!(
        "a=$(grep host.containers.internal /etc/hosts | cut -f1); roundtrip ask $a {port} {rounds}"
    );
    let out = f.run("relay", &["--host-loopback"], &["sh", "-c", &script]);
    let relay = median(times_printed(&out, "relay"));
    assert!(relay < limit, "relay: median round trip {relay:?}");

    // The forwarder: an allow-list naming the service, reached through its proxy port as
    // pip and mvn reach theirs.
    f.env.write(
        "config/sandbox/config.toml",
        &format!("[network]\nallow = [\"localhost:{port}\"]\n"),
    );
    let target = format!("localhost:{port}");
    let out = f
        .env
        .command(&[
            "run",
            "--host-loopback",
            "--image",
            &f.image,
            "--",
            "roundtrip",
            "ask",
            "127.0.0.1",
            "3128",
            rounds,
            &target,
        ])
        .output()
        .unwrap();
    f.env.write("config/sandbox/config.toml", "");
    let times = times_printed(&out, "forwarder");
    // The first message starts with a capital, as an SSH banner does: it was held 10 s as
    // the start of an HTTP head that never ended.
    assert!(
        times[0] < Duration::from_secs(2),
        "forwarder: the first round trip took {:?}",
        times[0]
    );
    let forwarder = median(times);
    assert!(
        forwarder < limit,
        "forwarder: median round trip {forwarder:?}"
    );

    // A published port of the relay: the host asks a server inside.
    let host_port = free_port();
    let child = f.start(
        "relay",
        &["-p", &format!("{host_port}:7000")],
        &["roundtrip", "serve", "7000"],
    );
    let published = median(host_roundtrips(host_port, 20));
    stop(child);
    assert!(
        published < limit,
        "published port: median round trip {published:?}"
    );
}

/// Reads the counts in `--stats --json`'s line (the last on stderr).
fn stats_json(out: &std::process::Output) -> serde_json::Value {
    let stderr = text(&out.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no stats JSON ({e}): {stderr}"))
}

/// A host service that reads an HTTP head and `upload` bytes from each connection, then sends
/// `download` bytes and closes (a head, so the forwarder can tell which name it is for).
fn host_exchange_server(upload: usize, download: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read_exact(&mut byte).is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let mut body = vec![0u8; upload];
                if s.read_exact(&mut body).is_ok() {
                    let _ = s.write_all(&vec![b'd'; download]);
                }
            });
        }
    });
    port
}

/// The relay and the forwarder carry traffic the kernel's interface counters never see (it
/// crosses the sandbox's loopback): `--stats`, `stats` and a joined command's `--stats` show
/// the bytes they carried, as they show pasta's.
#[test]
fn the_traffic_the_relay_and_the_forwarder_carry_is_counted() {
    let f = fixture();
    const UP: usize = 1 << 20;
    const DOWN: usize = 3 << 20;
    let port = host_exchange_server(UP, DOWN);
    let within = |figure: &serde_json::Value, bytes: usize, what: &str| {
        let n = figure.as_u64().unwrap_or(0) as usize;
        // Payload, plus headers where a helper counts packets: never less, never far more.
        assert!(
            n >= bytes && n < bytes + bytes / 5,
            "{what}: {n} bytes counted for {bytes}"
        );
    };
    // Up, then down, with busybox nc: what the sandbox then counted is known.
    let exchange = |address: &str| {
        format!(
            "{{ printf 'PUT / HTTP/1.1\\r\\nHost: localhost:{port}\\r\\n\\r\\n'; head -c {UP} /dev/zero; }} | nc {address} {port} | wc -c"
        )
    };
    let relay_address = "$(grep host.containers.internal /etc/hosts | cut -f1)";

    // One command through the relay, with --stats.
    let out = f.run(
        "relay",
        &["--host-loopback", "--stats", "--json"],
        &["sh", "-c", &exchange(relay_address)],
    );
    assert_eq!(
        text(&out.stdout).trim(),
        DOWN.to_string(),
        "{}",
        text(&out.stderr)
    );
    let stats = stats_json(&out);
    within(&stats["net_in"], DOWN, "relay --stats in");
    within(&stats["net_out"], UP, "relay --stats out");

    // Through the forwarder (an allow-list naming the service).
    f.env.write(
        "config/sandbox/config.toml",
        &format!("[network]\nallow = [\"localhost:{port}\"]\n"),
    );
    let out = f
        .env
        .command(&[
            "run",
            "--host-loopback",
            "--stats",
            "--json",
            "--image",
            &f.image,
            "--",
            "sh",
            "-c",
            &exchange("127.0.0.1"),
        ])
        .output()
        .unwrap();
    f.env.write("config/sandbox/config.toml", "");
    assert_eq!(
        text(&out.stdout).trim(),
        DOWN.to_string(),
        "forwarder: {}",
        text(&out.stderr)
    );
    let stats = stats_json(&out);
    within(&stats["net_in"], DOWN, "forwarder --stats in");
    within(&stats["net_out"], UP, "forwarder --stats out");

    // A running sandbox: `stats` shows what it carried so far, and so does a joined command.
    let script = format!("{} > got; sleep 30", exchange(relay_address));
    let running = f.start("relay", &["--host-loopback"], &["sh", "-c", &script]);
    let got = f.env.path().join("project/got");
    let row = eventually("the running sandbox's traffic in `stats`", || {
        let done = std::fs::read_to_string(&got).ok()?;
        (done.trim() == DOWN.to_string()).then_some(())?;
        let rows: serde_json::Value =
            serde_json::from_str(&f.env.ok(&["stats", "--no-stream", "--json"])).ok()?;
        let row = rows.get(0)?.clone();
        (row["net_in"].as_u64()? as usize >= DOWN).then_some(row)
    });
    within(&row["net_in"], DOWN, "stats in");
    within(&row["net_out"], UP, "stats out");
    let table = f.env.ok(&["stats", "--no-stream"]);
    assert!(
        table.contains("3 MiB / 1.0 MiB"),
        "the table shows the traffic: {table}"
    );
    let joined = f.run(
        "relay",
        &["--host-loopback", "--stats", "--json"],
        &["true"],
    );
    assert!(joined.status.success(), "{}", text(&joined.stderr));
    within(&stats_json(&joined)["net_in"], DOWN, "joined --stats in");
    stop(running);
}

/// A setup step installing from a service on the host's loopback (a package index or proxy,
/// as devpi or verdaccio serve there) reaches it when the project's trusted `host_loopback`
/// says so, as the project's commands do; without it the step cannot.
#[test]
fn a_setup_step_reaches_the_hosts_loopback_when_the_project_allows_it() {
    let f = fixture();
    let port = host_server("from-the-host-index");
    let step = format!(
        "{{ printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc host.containers.internal {port}; }} > /fetched || true"
    );
    // The step's text differs too: a stored layer is reused whatever the network says.
    let toml = |host_loopback: bool| {
        format!(
            "setup = [\"{step} # {host_loopback}\"]\n[toolchain]\nimage = \"{}\"\n[network]\nhost_loopback = {host_loopback}\n",
            f.image
        )
    };
    f.env.write("project/sandbox.toml", &toml(true));
    f.env.ok(&["trust"]);
    let fetched = f.env.ok(&["run", "--", "cat", "/fetched"]);
    assert!(fetched.contains("from-the-host-index"), "{fetched}");
    f.env.write("project/sandbox.toml", &toml(false));
    let fetched = f.env.ok(&["run", "--", "cat", "/fetched"]);
    assert!(!fetched.contains("from-the-host-index"), "{fetched}");
}

/// The host's own (non-loopback) IPv4 address, as its interfaces have it.
fn host_own_address() -> std::net::Ipv4Addr {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("run ip (iproute2)");
    text(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("this test needs an IPv4 address on one of the host's interfaces (not loopback)")
}

/// The relay refuses the host's own address (its eth0's), where a server bound to it or to
/// 0.0.0.0 would get the connection as local traffic, past a firewall that drops incoming
/// traffic; `--host-loopback` opens it, as it opens the loopback. (It reached the server.)
#[test]
fn the_relay_refuses_the_hosts_own_address_unless_asked() {
    let f = fixture();
    let address = host_own_address();
    // Bound to that address only: nothing on loopback or elsewhere answers this port.
    let listener = TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let target = address.to_string();
    let out = f.run("relay", &[], &["sh", "-c", &probe(&target, port)]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !stdout.contains("200 OK"),
        "the relay reached the host's own address: {stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "sandbox: blocked egress to {address}:{port} (it is the host itself, which the sandbox reaches only with --host-loopback)"
        )),
        "{stderr}"
    );
    let out = f.run(
        "relay",
        &["--host-loopback"],
        &["sh", "-c", &probe(&target, port)],
    );
    assert!(
        text(&out.stdout).contains("200 OK"),
        "--host-loopback: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
