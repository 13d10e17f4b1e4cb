//! The plan, decided from inputs without root or namespaces.

use std::path::{Path, PathBuf};

use super::*;
use crate::runtime::error::PlanError;
use crate::runtime::net::helpers::Helper;
use crate::runtime::state::ContainerState;
use crate::settings::limits::Limits;
use crate::settings::network::parse_port;
use crate::settings::network::NetworkMode;

fn host() -> HostFacts {
    HostFacts {
        user: host::HostUser {
            uid: 1000,
            gid: 1000,
            name: "dev".into(),
            home: "/home/dev".into(),
            home_alias: None,
            shell: "/bin/zsh".into(),
        },
        cwd: "/home/dev/app/src".into(),
        terminal_env: vec![
            ("TERM".into(), "xterm".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ],
        resolv_conf: "nameserver 10.0.0.1\n".into(),
        relay: true,
        helper: None,
        gateway: Some("192.168.1.1".parse().unwrap()),
        overlay: OverlayChoice::Auto,
        store: "/store".into(),
        cache_root: Some("/home/dev/.cache/sandbox/caches".into()),
        stdio: [FdKind::Terminal, FdKind::Pipe, FdKind::Null],
        cgroups: crate::runtime::cgroups::CgroupFacts::default(),
        proxy_env: vec![("https_proxy".into(), "http://proxy.example:3128".into())],
    }
}

fn project() -> ProjectInputs {
    ProjectInputs {
        dir: "/home/dev/app".into(),
        env: vec![("CARGO_HOME".into(), "~/.cargo".into())],
        ..ProjectInputs::default()
    }
}

fn request() -> Request {
    Request {
        home: Some("/store/homes/0123".into()),
        ..Request::new(Program::Command(vec!["make".into()]), Stdio::Inherit)
    }
}

fn plan_for(
    project: &ProjectInputs,
    request: &Request,
    host: &HostFacts,
) -> Result<LaunchPlan, PlanError> {
    resolve(&Inputs {
        kind: LaunchKind::Command,
        id: "abc".into(),
        image: "docker.io/library/debian:12",
        layers: vec!["/store/layers/a/root".into(), "/store/layers/b/root".into()],
        image_env: &["PATH=/image/bin".into(), "LANG=C".into()],
        project,
        request,
        host,
        ids_mapped: true,
        trust: None,
    })
}

fn plan(project: &ProjectInputs, request: &Request) -> LaunchPlan {
    plan_for(project, request, &host()).unwrap()
}

fn setup_plan(project: &ProjectInputs) -> LaunchPlan {
    resolve(&Inputs {
        kind: LaunchKind::Setup {
            keep_upper: "/store/tmp/setup-x".into(),
        },
        id: "def".into(),
        image: "docker.io/library/debian:12",
        layers: vec!["/store/layers/a/root".into()],
        image_env: &["PATH=/image/bin".into()],
        project,
        request: &Request {
            program: Program::Command(vec!["/bin/sh".into(), "-c".into(), "apt-get update".into()]),
            stdio: Stdio::Capture,
            as_root: true,
            ..request()
        },
        host: &host(),
        ids_mapped: true,
        trust: None,
    })
    .unwrap()
}

fn position(ops: &[MountOp], wanted: impl Fn(&MountOp) -> bool) -> usize {
    ops.iter().position(wanted).unwrap()
}

fn project_bind(dir: &str) -> MountOp {
    MountOp::Bind {
        source: dir.into(),
        target: dir.into(),
        kind: Kind::Dir,
        read_only: false,
    }
}

#[test]
fn the_project_is_bound_at_its_own_path_after_tmp_and_masks_follow_proc() {
    let p = plan(&project(), &request());
    let ops = &p.rootfs.mounts;
    let bind = position(ops, |o| *o == project_bind("/home/dev/app"));
    let tmp = position(
        ops,
        |o| matches!(o, MountOp::Tmpfs { target, .. } if target == Path::new("/tmp")),
    );
    assert!(
        tmp < bind,
        "a project under /tmp must not be hidden by the /tmp tmpfs"
    );
    let proc_at = position(ops, |o| matches!(o, MountOp::Proc { .. }));
    let first_mask = position(ops, |o| matches!(o, MountOp::Mask { .. }));
    assert!(proc_at < first_mask);
    assert!(ops.contains(&MountOp::Mask {
        target: "/proc/kcore".into()
    }));
    assert!(ops.contains(&MountOp::ReadOnly {
        target: "/proc/sys".into()
    }));
    assert!(ops.contains(&MountOp::Sys {
        target: "/sys".into(),
        own_netns: true
    }));
    // Nothing of the host's home but the project.
    assert!(!ops
        .iter()
        .any(|o| matches!(o, MountOp::Bind { source, .. } if source == Path::new("/home/dev"))));
    assert_eq!(p.dir, PathBuf::from("/store/containers/abc"));
    assert_eq!(p.upper(), PathBuf::from("/store/containers/abc/upper"));
}

#[test]
fn host_network_binds_the_hosts_sys_instead_of_mounting_one() {
    let p = plan(
        &project(),
        &Request {
            network: Some(NetworkMode::Host),
            ..request()
        },
    );
    assert_eq!(p.network.mode, Network::Host);
    assert!(
        !p.namespaces.contains(&Namespace::Net),
        "host networking shares the host's"
    );
    assert!(plan(&project(), &request())
        .namespaces
        .contains(&Namespace::Net));
    for ns in [
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
    ] {
        assert!(p.namespaces.contains(&ns), "{ns:?}");
    }
    assert!(p.rootfs.mounts.contains(&MountOp::Sys {
        target: "/sys".into(),
        own_netns: false
    }));
    let resolv = p
        .rootfs
        .etc_files
        .iter()
        .find(|f| f.path == Path::new("/etc/resolv.conf"))
        .unwrap();
    assert_eq!(
        resolv.content,
        EtcContent::Text("nameserver 10.0.0.1\n".into())
    );
}

#[test]
fn the_user_is_themselves_with_their_home_and_the_working_dir_stays_in_the_project() {
    let p = plan(&project(), &request());
    let process = &p.process;
    assert_eq!((process.user.uid, process.user.gid), (1000, 1000));
    assert_eq!(process.user.home, PathBuf::from("/home/dev"));
    assert!(!process.as_root);
    assert_eq!(process.cwd, PathBuf::from("/home/dev/app/src"));
    assert_eq!(
        p.rootfs.home,
        (PathBuf::from("/home/dev"), Some((1000, 1000)))
    );
    // /etc files belong to root inside.
    assert!(p.rootfs.etc_files.iter().all(|f| f.owner == Some((0, 0))));

    // A current dir outside the project falls back to the project dir.
    let outside = HostFacts {
        cwd: "/etc".into(),
        ..host()
    };
    assert_eq!(
        plan_for(&project(), &request(), &outside)
            .unwrap()
            .process
            .cwd,
        PathBuf::from("/home/dev/app")
    );
    // sandbox.toml's workdir wins over the current dir.
    let with_workdir = ProjectInputs {
        workdir: Some("web".into()),
        ..project()
    };
    assert_eq!(
        plan(&with_workdir, &request()).process.cwd,
        PathBuf::from("/home/dev/app/web")
    );
}

#[test]
fn the_environment_is_image_then_project_then_user_then_terminal_then_flags() {
    let p = plan(
        &project(),
        &Request {
            env: vec![
                ("LANG".into(), "de_DE.UTF-8".into()),
                ("X".into(), "1".into()),
            ],
            ..request()
        },
    );
    let env = &p.process.env;
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("PATH"), Some("/image/bin"));
    assert_eq!(
        get("CARGO_HOME"),
        Some("/home/dev/.cargo"),
        "`~/` is the home inside"
    );
    assert_eq!(get("HOME"), Some("/home/dev"));
    assert_eq!(get("USER"), Some("dev"));
    assert_eq!(get("HOSTNAME"), Some("app"));
    assert_eq!(get("TERM"), Some("xterm"));
    assert_eq!(
        get("LANG"),
        Some("de_DE.UTF-8"),
        "-e wins over the host's LANG and the image's"
    );
    assert_eq!(get("X"), Some("1"));
    assert_eq!(env.iter().filter(|(k, _)| k == "LANG").count(), 1);
}

#[test]
fn the_network_is_the_flag_then_sandbox_toml_then_the_relay() {
    let none_in_toml = ProjectInputs {
        network: Some(NetworkMode::None),
        ..project()
    };
    assert_eq!(plan(&none_in_toml, &request()).network.mode, Network::None);
    let flag = Request {
        network: Some(NetworkMode::Slirp4netns),
        ..request()
    };
    assert_eq!(
        plan(&none_in_toml, &flag).network.mode,
        Network::Helper(Helper::Slirp4netns)
    );
    // The default needs no helper installed: sandbox relays the connections itself.
    let default = plan(&project(), &request());
    assert_eq!(default.network.mode, Network::Relay);
    let resolv = default
        .rootfs
        .etc_files
        .iter()
        .find(|f| f.path == Path::new("/etc/resolv.conf"))
        .unwrap();
    assert!(matches!(&resolv.content, EtcContent::Text(t) if t.contains("nameserver 169.254.1.1")));
    // Where the kernel cannot relay: pasta if installed, else slirp4netns, else an error.
    let no_relay = |helper| HostFacts {
        relay: false,
        helper,
        ..host()
    };
    assert_eq!(
        plan_for(&project(), &request(), &no_relay(Some(Helper::Pasta)))
            .unwrap()
            .network
            .mode,
        Network::Helper(Helper::Pasta)
    );
    assert!(matches!(
        plan_for(&project(), &request(), &no_relay(None)),
        Err(PlanError::NoNetworkHelper)
    ));
    // An explicit relay is tried all the same (the keeper then says why it cannot).
    let relay = Request {
        network: Some(NetworkMode::Relay),
        ..request()
    };
    assert_eq!(
        plan_for(&project(), &relay, &no_relay(None))
            .unwrap()
            .network
            .mode,
        Network::Relay
    );
    let pasta = Request {
        network: Some(NetworkMode::Pasta),
        network_log: Some("/tmp/log".into()),
        ..request()
    };
    let p = plan(&project(), &pasta);
    assert_eq!(p.network.mode, Network::Helper(Helper::Pasta));
    assert_eq!(p.network.options.log, None, "pasta logs nothing");
    let logged = Request {
        network_log: Some("/tmp/log".into()),
        ..request()
    };
    // Outside the project: only the file's own name is guarded.
    assert_eq!(
        plan(&project(), &logged).network.options.log,
        Some(crate::fsutil::beneath::GuardedPath {
            root: "/tmp".into(),
            rest: "log".into()
        })
    );
}

#[test]
fn ports_come_from_sandbox_toml_and_flags_and_need_a_helper() {
    let toml = ProjectInputs {
        ports: vec![parse_port("8080:80").unwrap()],
        ..project()
    };
    let flags = Request {
        publish: vec![parse_port("5353:53/udp").unwrap()],
        host_loopback: true,
        ..request()
    };
    // The relay (the default) reaches the host's loopback at an address of its own.
    let relayed = plan(&toml, &flags);
    assert_eq!(relayed.network.options.ports.len(), 2);
    assert_eq!(
        relayed.network.options.host_address.as_deref(),
        Some("169.254.1.2")
    );
    let flags = Request {
        network: Some(NetworkMode::Pasta),
        ..flags
    };
    let p = plan(&toml, &flags);
    assert_eq!(p.network.options.ports.len(), 2);
    assert!(p.network.options.host_loopback);
    assert_eq!(
        p.network.options.host_address.as_deref(),
        Some("192.168.1.1")
    );
    let hosts = p
        .rootfs
        .etc_files
        .iter()
        .find(|f| f.path == Path::new("/etc/hosts"))
        .unwrap();
    assert!(
        matches!(&hosts.content, EtcContent::Text(t) if t.contains("192.168.1.1\thost.containers.internal"))
    );

    let none = Request {
        network: Some(NetworkMode::None),
        ..flags
    };
    assert!(matches!(
        plan_for(&toml, &none, &host()),
        Err(PlanError::PortsNeedHelper)
    ));
}

#[test]
fn only_a_plain_pasta_network_may_come_from_the_stores_warm_pool() {
    let pasta = Request {
        network: Some(NetworkMode::Pasta),
        ..request()
    };
    let store = Some(PathBuf::from("/store"));
    assert_eq!(plan(&project(), &pasta).warm_pool, store);
    assert_eq!(plan(&project(), &request()).warm_pool, None, "the relay");
    let published = Request {
        publish: vec![parse_port("8080:80").unwrap()],
        ..pasta.clone()
    };
    assert_eq!(plan(&project(), &published).warm_pool, None);
    let host_loopback = Request {
        host_loopback: true,
        ..pasta
    };
    assert_eq!(plan(&project(), &host_loopback).warm_pool, None);
}

#[test]
fn caches_live_under_the_cache_root_and_mount_in_the_users_home() {
    let with_cache = ProjectInputs {
        caches: vec![("rust".into(), "cargo".into(), "~/.cargo/registry".into())],
        ..project()
    };
    let p = plan(&with_cache, &request());
    assert_eq!(
        p.rootfs.caches,
        vec![CacheMount {
            host: "/home/dev/.cache/sandbox/caches/rust/cargo".into(),
            target: "/home/dev/.cargo/registry".into(),
            owner: (1000, 1000),
        }]
    );
    let homeless = HostFacts {
        cache_root: None,
        ..host()
    };
    assert!(matches!(
        plan_for(&with_cache, &request(), &homeless),
        Err(PlanError::NoCacheDir)
    ));
}

#[test]
fn as_root_needs_subordinate_ids_and_owns_the_home() {
    let root = Request {
        as_root: true,
        ..request()
    };
    let p = plan(&project(), &root);
    assert!(p.process.as_root);
    assert_eq!(p.rootfs.home.1, Some((0, 0)));
    let single = resolve(&Inputs {
        kind: LaunchKind::Command,
        id: "abc".into(),
        image: "img",
        layers: Vec::new(),
        image_env: &[],
        project: &project(),
        request: &root,
        host: &host(),
        ids_mapped: false,
        trust: None,
    });
    assert!(matches!(single, Err(PlanError::AsRootNeedsSubordinateIds)));
}

#[test]
fn a_setup_container_is_the_same_plan_as_root_without_the_project_and_keeping_its_changes() {
    let with_cache = ProjectInputs {
        caches: vec![("rust".into(), "cargo".into(), "~/.cargo".into())],
        ports: vec![parse_port("8080:80").unwrap()],
        ..project()
    };
    let p = setup_plan(&with_cache);
    assert_eq!(p.keep_upper, Some(PathBuf::from("/store/tmp/setup-x")));
    assert_eq!(
        p.image, "docker.io/library/debian:12 (setup)",
        "a run must not join it"
    );
    assert!(
        !p.rootfs.mounts.contains(&project_bind("/home/dev/app")),
        "its layer must not depend on one project's files"
    );
    assert!(p.rootfs.caches.is_empty());
    assert!(
        p.network.options.ports.is_empty(),
        "setup publishes nothing"
    );
    assert!(p.process.as_root);
    assert_eq!(p.process.stdio, Stdio::Capture);
    assert_eq!(p.process.cwd, PathBuf::from("/"));
    assert_eq!(p.rootfs.home, (PathBuf::from("/root"), Some((0, 0))));
    let env = &p.process.env;
    assert!(env.contains(&("HOME".into(), "/root".into())));
    assert!(env.contains(&("CARGO_HOME".into(), "/root/.cargo".into())));
    assert!(env.contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into())));
    assert!(
        !env.iter().any(|(k, _)| k == "TERM"),
        "no host variables in a shared layer"
    );
    // The user's own command plan, by contrast, keeps nothing.
    assert_eq!(plan(&project(), &request()).keep_upper, None);
}

fn running(network: &str) -> ContainerState {
    ContainerState {
        id: "c0ffee".into(),
        project_dir: "/home/dev/app".into(),
        image: "docker.io/library/debian:12".into(),
        pid: 42,
        pid_start: 1,
        pid_ns: "pid:[1]".into(),
        started: 0,
        hostname: "app".into(),
        network: network.into(),
        cgroup: None,
        trusts_host_cas: false,
        java_options: false,
        sources: Vec::new(),
        command: vec!["true".into()],
        ports: Vec::new(),
        dir: "/store/containers/c0ffee".into(),
    }
}

#[test]
fn a_join_shares_the_running_network_and_refuses_another() {
    let inputs = |request| Inputs {
        kind: LaunchKind::Command,
        id: "x".into(),
        image: "docker.io/library/debian:12",
        layers: Vec::new(),
        image_env: &[],
        project: &PROJECT,
        request,
        host: &HOST,
        ids_mapped: true,
        trust: None,
    };
    static PROJECT: std::sync::LazyLock<ProjectInputs> = std::sync::LazyLock::new(project);
    static HOST: std::sync::LazyLock<HostFacts> = std::sync::LazyLock::new(host);
    let plain = request();
    let process = resolve_join(&inputs(&plain), &running("pasta")).unwrap();
    assert_eq!(process.program, Program::Command(vec!["make".into()]));
    assert!(process.env.contains(&("HOSTNAME".into(), "app".into())));
    let other = Request {
        network: Some(NetworkMode::None),
        ..request()
    };
    assert!(matches!(
        resolve_join(&inputs(&other), &running("pasta")),
        Err(PlanError::OtherNetwork { .. })
    ));
    // Asking for exactly the running network is fine.
    let same = Request {
        network: Some(NetworkMode::Pasta),
        ..request()
    };
    assert!(resolve_join(&inputs(&same), &running("pasta")).is_ok());
}

#[test]
fn container_root_holds_podmans_set_changed_by_file_then_flags_and_setup_ignores_flags() {
    use caps::Capability::*;
    let host = host();
    let mut project = project();
    project.cap_drop = vec![CAP_NET_RAW, CAP_CHOWN];
    let mut request = request();
    request.cap_add = vec![CAP_CHOWN, CAP_SYS_PTRACE];
    request.seccomp = Seccomp::Unconfined;
    let plan = plan_for(&project, &request, &host).unwrap();
    let root = &plan.process.root_capabilities;
    assert!(
        root.contains(&CAP_CHOWN),
        "a flag wins over the file's drop"
    );
    assert!(root.contains(&CAP_SYS_PTRACE));
    assert!(!root.contains(&CAP_SYS_ADMIN) && !root.contains(&CAP_NET_ADMIN));
    assert_eq!(plan.process.seccomp, Seccomp::Unconfined);

    let setup = resolve(&Inputs {
        kind: LaunchKind::Setup {
            keep_upper: "/store/tmp/layer".into(),
        },
        id: "abc".into(),
        image: "img",
        layers: vec!["/store/layers/a/root".into()],
        image_env: &[],
        project: &project,
        request: &request,
        host: &host,
        ids_mapped: true,
        trust: None,
    })
    .unwrap();
    let root = &setup.process.root_capabilities;
    assert!(!root.contains(&CAP_CHOWN) && !root.contains(&CAP_SYS_PTRACE));
    assert_eq!(setup.process.seccomp, Seccomp::Default);
}

#[test]
fn limits_are_the_files_then_the_flags_and_size_tmp_and_setup_keeps_the_files() {
    let host = host();
    let mut project = project();
    project.limits = Limits {
        memory: Some(512 << 20),
        pids: Some(64),
        ..Limits::default()
    };
    let mut request = request();
    request.limits = Limits {
        memory: Some(64 << 20),
        ..Limits::default()
    };
    let plan = plan_for(&project, &request, &host).unwrap();
    assert_eq!(plan.limits.memory, Some(64 << 20));
    assert_eq!(plan.limits.pids, Some(64));
    // /tmp and /dev/shm default to half of the memory limit.
    let tmp = plan
        .rootfs
        .mounts
        .iter()
        .find_map(|m| match m {
            MountOp::Tmpfs { target, options } if target == Path::new("/tmp") => {
                Some(options.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(tmp, "mode=1777,size=32768k");
    // No delegation on this host: both cgroup limits are named, and required refuses.
    assert_eq!(plan.cgroup.not_applied.len(), 2);
    request.limits.required = true;
    assert!(matches!(
        plan_for(&project, &request, &host),
        Err(PlanError::LimitsNotApplied(_))
    ));
}

fn trust() -> super::HostTrust {
    super::HostTrust {
        bundle: "/store/tls/k.pem".into(),
        java_store: "/store/tls/k.jks".into(),
        system_bundle: Some("/etc/ssl/certs/ca-certificates.crt".into()),
        jvm_stores: vec!["/etc/ssl/certs/java/cacerts".into()],
    }
}

fn with_trust(kind: LaunchKind, trust: Option<&super::HostTrust>) -> LaunchPlan {
    resolve(&Inputs {
        kind,
        id: "abc".into(),
        image: "img",
        layers: vec!["/store/layers/a/root".into()],
        image_env: &["JAVA_TOOL_OPTIONS=-Xss1m".into()],
        project: &project(),
        request: &request(),
        host: &host(),
        ids_mapped: true,
        trust,
    })
    .unwrap()
}

fn env_of<'a>(plan: &'a LaunchPlan, key: &str) -> Option<&'a str> {
    plan.process
        .env
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_host_cas_are_mounted_read_only_over_the_images_for_a_command_only() {
    let trust = trust();
    let command = with_trust(LaunchKind::Command, Some(&trust));
    let targets: Vec<&str> = command
        .rootfs
        .trust
        .iter()
        .map(|(_, t)| t.to_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            super::TRUST_BUNDLE,
            super::TRUST_JAVA_STORE,
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/ssl/certs/java/cacerts"
        ]
    );
    for name in super::TRUST_VARIABLES {
        assert_eq!(env_of(&command, name), Some(super::TRUST_BUNDLE), "{name}");
    }
    // The image's JVM store is mounted over: no JVM option needed, the image's kept.
    assert_eq!(env_of(&command, "JAVA_TOOL_OPTIONS"), Some("-Xss1m"));
    // Setup steps rewrite the system bundle when they install packages: only sandbox's own
    // paths, and the JVM told where its store is.
    let setup = with_trust(
        LaunchKind::Setup {
            keep_upper: "/store/tmp/x".into(),
        },
        Some(&trust),
    );
    assert_eq!(setup.rootfs.trust.len(), 2);
    assert_eq!(env_of(&setup, "SSL_CERT_FILE"), Some(super::TRUST_BUNDLE));
    let java = env_of(&setup, "JAVA_TOOL_OPTIONS").unwrap();
    assert!(
        java.starts_with("-Xss1m ")
            && java.contains("-Djavax.net.ssl.trustStore=/dev/sandbox/cacerts.jks"),
        "{java}"
    );
    // Without host CAs nothing changes.
    let plain = with_trust(LaunchKind::Command, None);
    assert!(plain.rootfs.trust.is_empty());
    assert_eq!(env_of(&plain, "SSL_CERT_FILE"), None);
}

#[test]
fn the_hosts_proxy_variables_reach_commands_and_setup_steps() {
    let command = with_trust(LaunchKind::Command, None);
    assert_eq!(
        env_of(&command, "https_proxy"),
        Some("http://proxy.example:3128")
    );
    let setup = with_trust(
        LaunchKind::Setup {
            keep_upper: "/store/tmp/x".into(),
        },
        None,
    );
    assert_eq!(
        env_of(&setup, "https_proxy"),
        Some("http://proxy.example:3128")
    );
}

#[test]
fn the_persistent_home_is_bound_for_commands_and_never_for_setup() {
    let command = plan(&project(), &request());
    assert_eq!(
        command.rootfs.home_source.as_deref(),
        Some(std::path::Path::new("/store/homes/0123"))
    );
    let setup = setup_plan(&project());
    assert_eq!(setup.rootfs.home_source, None);
    let mut fresh = request();
    fresh.home = None;
    assert_eq!(plan(&project(), &fresh).rootfs.home_source, None);
}

#[test]
fn forwarded_things_are_bound_for_commands_with_the_agents_variable() {
    let mut request = request();
    request.forward = super::Forwarded {
        ssh_agent: Some("/tmp/ssh-x/agent.1".into()),
        paths: vec![("/home/dev/.gitconfig".into(), "~/.gitconfig".into(), false)],
        volumes: Vec::new(),
    };
    let command = plan(&project(), &request);
    let forward = &command.rootfs.forward;
    assert_eq!(forward.len(), 2);
    assert_eq!(
        forward[0].target,
        std::path::Path::new(super::SSH_AGENT_SOCKET)
    );
    assert!(!forward[0].read_only, "a socket is connected to");
    assert!(forward[1].target.ends_with(".gitconfig") && forward[1].read_only);
    assert!(forward[1].target.starts_with(&command.process.user.home));
    assert_eq!(
        env_of(&command, "SSH_AUTH_SOCK"),
        Some(super::SSH_AGENT_SOCKET)
    );
    let setup = resolve(&Inputs {
        kind: LaunchKind::Setup {
            keep_upper: "/store/tmp/x".into(),
        },
        id: "abc".into(),
        image: "img",
        layers: vec!["/store/layers/a/root".into()],
        image_env: &[],
        project: &project(),
        request: &request,
        host: &host(),
        ids_mapped: true,
        trust: None,
    })
    .unwrap();
    assert!(
        setup.rootfs.forward.is_empty(),
        "setup steps get nothing of the host's"
    );
}

fn policy(names: &[&str]) -> crate::runtime::net::egress::Policy {
    crate::runtime::net::egress::Policy {
        allow: crate::settings::allow_list::AllowList {
            rules: names
                .iter()
                .map(|n| crate::settings::allow_list::Rule::parse(n).unwrap())
                .collect(),
        },
        source: "[network].allow in sandbox.toml:3".into(),
        log: None,
        host_loopback: false,
    }
}

#[test]
fn an_allow_list_filters_the_network_and_points_tools_at_the_forwarder() {
    let toml = ProjectInputs {
        egress: Some(policy(&["pypi.org"])),
        setup_egress: Some(policy(&["deb.debian.org"])),
        ..project()
    };
    let flags = Request {
        host_loopback: true,
        network_log: Some("/home/dev/app/net.jsonl".into()),
        ..request()
    };
    let p = plan(&toml, &flags);
    assert_eq!(p.network.mode, Network::Filtered);
    let chosen = p.network.options.policy.as_ref().unwrap();
    assert!(chosen.allow.allows("pypi.org", 443) && chosen.host_loopback);
    // In the project: no link below it is followed.
    assert_eq!(
        chosen.log,
        Some(crate::fsutil::beneath::GuardedPath {
            root: "/home/dev/app".into(),
            rest: "net.jsonl".into()
        })
    );
    // The forwarder replaces the host's proxy inside; it dials through that one itself.
    assert_eq!(env_of(&p, "https_proxy"), Some("http://127.0.0.1:3128"));
    assert!(env_of(&p, "JAVA_TOOL_OPTIONS")
        .unwrap()
        .contains("-Dhttps.proxyPort=3128"));
    let resolv = p
        .rootfs
        .etc_files
        .iter()
        .find(|f| f.path == Path::new("/etc/resolv.conf"))
        .unwrap();
    assert!(matches!(&resolv.content, EtcContent::Text(t) if t.contains("nameserver 169.254.1.1")));
    assert!(network_summary(p.network.mode, &p.network.options).contains("allow pypi.org"));

    // Setup steps run with their own list.
    let setup = setup_plan(&toml);
    assert_eq!(setup.network.mode, Network::Filtered);
    let setup_policy = setup.network.options.policy.as_ref().unwrap();
    assert!(setup_policy.allow.allows("deb.debian.org", 80));
    assert!(!setup_policy.allow.allows("pypi.org", 443));
}

#[test]
fn an_allow_list_refuses_the_hosts_network_and_ports_and_yields_to_the_users_flags() {
    let toml = ProjectInputs {
        egress: Some(policy(&["pypi.org"])),
        ..project()
    };
    let host_network = Request {
        network: Some(NetworkMode::Host),
        ..request()
    };
    assert!(matches!(
        plan_for(&toml, &host_network, &host()),
        Err(PlanError::AllowWithHostNetwork)
    ));
    // Published ports go through the keeper's own relay, but not on a port it holds inside.
    let publish = Request {
        publish: vec![parse_port("8080:80").unwrap()],
        ..request()
    };
    assert!(matches!(
        plan_for(&toml, &publish, &host()),
        Err(PlanError::AllowHoldsPort { port: 80 })
    ));
    let publish = Request {
        publish: vec![parse_port("8080:8000").unwrap()],
        ..request()
    };
    let p = plan(&toml, &publish);
    assert_eq!(
        (p.network.mode, p.network.options.ports.len()),
        (Network::Filtered, 1)
    );
    let none = Request {
        network: Some(NetworkMode::None),
        ..request()
    };
    assert_eq!(plan(&toml, &none).network.mode, Network::None);
    // The user's own flag for a helper is theirs to give: the open network.
    let pasta = Request {
        network: Some(NetworkMode::Pasta),
        ..request()
    };
    assert_eq!(
        plan(&toml, &pasta).network.mode,
        Network::Helper(Helper::Pasta)
    );
    let relay = Request {
        network: Some(NetworkMode::Relay),
        ..request()
    };
    assert_eq!(plan(&toml, &relay).network.mode, Network::Relay);
    assert_eq!(plan(&toml, &request()).network.mode, Network::Filtered);
}

#[test]
fn a_setup_step_reaches_the_hosts_loopback_when_the_project_asks_for_it() {
    // Without it: no host.containers.internal, as before.
    let plain = setup_plan(&project());
    assert!(!plain.network.options.host_loopback);
    // With the project's (trusted) host_loopback: the relay's host address, named in
    // /etc/hosts; still nothing published.
    let project = ProjectInputs {
        host_loopback: true,
        ports: vec![crate::settings::network::parse_port("8080:80").unwrap()],
        ..project()
    };
    let setup = setup_plan(&project);
    assert!(setup.network.options.host_loopback);
    assert_eq!(
        setup.network.options.host_address.as_deref(),
        Some("169.254.1.2")
    );
    assert!(setup.network.options.ports.is_empty());
    let hosts = setup
        .rootfs
        .etc_files
        .iter()
        .find(|f| f.path == std::path::Path::new("/etc/hosts"))
        .unwrap();
    assert!(
        matches!(&hosts.content, EtcContent::Text(t) if t.contains("169.254.1.2\thost.containers.internal")),
        "{:?}",
        hosts.content
    );
}

/// Where each mount of a plan goes, in order (the /dev entries and masks left out).
fn mount_order(p: &LaunchPlan) -> Vec<String> {
    use crate::runtime::plan::MountOp;
    p.rootfs
        .mounts
        .iter()
        .filter_map(|op| match op {
            MountOp::Proc { target } => Some(format!("proc {}", target.display())),
            MountOp::Sys { target, .. } => Some(format!("sys {}", target.display())),
            MountOp::Tmpfs { target, .. } => Some(format!("tmpfs {}", target.display())),
            MountOp::Dir { target, owner } => Some(format!("dir {} {owner:?}", target.display())),
            MountOp::Skel { home, .. } => Some(format!("skel {}", home.display())),
            MountOp::SymlinkIfMissing { link, points_to } => Some(format!(
                "link {} -> {}",
                link.display(),
                points_to.display()
            )),
            MountOp::Bind { source, target, .. } if !target.starts_with("/dev") => {
                Some(format!("bind {} {}", source.display(), target.display()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_home_is_mounted_before_a_project_inside_it() {
    // The project at /home/dev/app, the home's per-project dir bound over /home/dev first.
    let p = plan(&project(), &request());
    assert_eq!(
        mount_order(&p),
        [
            "proc /proc",
            "sys /sys",
            "tmpfs /dev",
            "tmpfs /dev/shm",
            "tmpfs /tmp",
            "dir /home/dev Some((1000, 1000))",
            "bind /store/homes/0123 /home/dev",
            "skel /home/dev",
            "dir /home/dev/app Some((1000, 1000))",
            "bind /home/dev/app /home/dev/app",
        ]
    );
    // A project outside the home: nothing made for it in the home.
    let elsewhere = ProjectInputs {
        dir: "/srv/app".into(),
        ..project()
    };
    let order = mount_order(&plan(&elsewhere, &request()));
    assert_eq!(
        order[5..],
        [
            "dir /home/dev Some((1000, 1000))",
            "bind /store/homes/0123 /home/dev",
            "skel /home/dev",
            "bind /srv/app /srv/app"
        ]
    );
    // The home itself as the project: bound last, over the per-project home.
    let home = ProjectInputs {
        dir: "/home/dev".into(),
        ..project()
    };
    let order = mount_order(&plan(&home, &request()));
    assert_eq!(
        order.last().map(String::as_str),
        Some("bind /home/dev /home/dev")
    );
    // --fresh-home: an empty home made in the container, the project still inside it.
    let mut fresh = request();
    fresh.home = None;
    let order = mount_order(&plan(&project(), &fresh));
    assert_eq!(
        order[5..],
        [
            "dir /home/dev Some((1000, 1000))",
            "skel /home/dev",
            "dir /home/dev/app Some((1000, 1000))",
            "bind /home/dev/app /home/dev/app"
        ]
    );
}

/// A home passwd names through a symlink (Silverblue's `/home -> var/home`): mounted at its
/// resolved path, where the resolved project dir lies, and its named path linked to it; never
/// in a setup step.
#[test]
fn a_home_reached_through_a_symlink_is_mounted_resolved_and_linked() {
    let mut facts = host();
    facts.user.home = "/var/home/dev".into();
    facts.user.home_alias = Some("/home/dev".into());
    facts.cwd = "/var/home/dev/app".into();
    let project = ProjectInputs {
        dir: "/var/home/dev/app".into(),
        ..project()
    };
    let p = plan_for(&project, &request(), &facts).unwrap();
    assert_eq!(
        mount_order(&p)[5..],
        [
            "dir /var/home/dev Some((1000, 1000))",
            "bind /store/homes/0123 /var/home/dev",
            "skel /var/home/dev",
            "dir /var/home/dev/app Some((1000, 1000))",
            "bind /var/home/dev/app /var/home/dev/app",
            "link /home/dev -> /var/home/dev",
        ]
    );
    assert!(p
        .process
        .env
        .iter()
        .any(|(k, v)| k == "HOME" && v == "/var/home/dev"));
}

/// A step as a short line: what it does, and where.
fn step_line(step: &super::steps::RootfsStep) -> String {
    use super::steps::RootfsStep;
    let shown = |p: &std::path::Path| p.display().to_string();
    match step {
        RootfsStep::Overlay => "overlay".into(),
        RootfsStep::CgroupNamespace => "cgroup namespace".into(),
        RootfsStep::WriteEtc(file) => format!("write {}", shown(&file.path)),
        RootfsStep::Mount(op) => match op {
            MountOp::Bind {
                target, read_only, ..
            } => format!(
                "bind {}{}",
                shown(target),
                if *read_only { " ro" } else { "" }
            ),
            MountOp::Proc { target } => format!("proc {}", shown(target)),
            MountOp::Sys { target, .. } => format!("sys {}", shown(target)),
            MountOp::CgroupFs { target, .. } => format!("cgroup {}", shown(target)),
            MountOp::Tmpfs { target, .. } => format!("tmpfs {}", shown(target)),
            MountOp::Devpts { target } => format!("devpts {}", shown(target)),
            MountOp::Symlink { link, .. } => format!("symlink {}", shown(link)),
            MountOp::SymlinkIfMissing { link, .. } => format!("symlink? {}", shown(link)),
            MountOp::Mask { target } => format!("mask {}", shown(target)),
            MountOp::ReadOnly { target } => format!("ro {}", shown(target)),
            MountOp::Dir { target, .. } => format!("dir {}", shown(target)),
            MountOp::Skel { home, .. } => format!("skel {}", shown(home)),
        },
    }
}

/// The whole order pid 1 builds a command's root in, with a cache, the host's CAs and a
/// forwarded file.
#[test]
fn pid_1_builds_the_root_in_one_order() {
    let mut project = project();
    project.caches = vec![("java".into(), "maven".into(), "~/.m2".into())];
    let mut request = request();
    request.forward = super::Forwarded {
        ssh_agent: None,
        paths: vec![("/home/dev/.gitconfig".into(), "~/.gitconfig".into(), false)],
        volumes: Vec::new(),
    };
    let trust = trust();
    let plan = resolve(&Inputs {
        kind: LaunchKind::Command,
        id: "abc".into(),
        image: "img",
        layers: vec!["/store/layers/a/root".into()],
        image_env: &[],
        project: &project,
        request: &request,
        host: &host(),
        ids_mapped: true,
        trust: Some(&trust),
    })
    .unwrap();
    let lines: Vec<String> = plan.rootfs.steps().iter().map(step_line).collect();
    // The overlay, then its own cgroup namespace before /sys/fs/cgroup is mounted; /proc,
    // /sys, /dev and /tmp before the home (over an image's /home) and the project (inside the
    // home); masks after whatever they hide; /etc files into the overlay's upper dir; the
    // caches once the home exists; the host's CAs; and last what the user forwards, which is
    // theirs to place over anything of sandbox's.
    assert_eq!(
        lines,
        [
            "overlay",
            "cgroup namespace",
            "proc /proc",
            "sys /sys",
            "cgroup /sys/fs/cgroup",
            "tmpfs /dev",
            "bind /dev/null",
            "bind /dev/zero",
            "bind /dev/full",
            "bind /dev/random",
            "bind /dev/urandom",
            "bind /dev/tty",
            "devpts /dev/pts",
            "symlink /dev/ptmx",
            "symlink /dev/fd",
            "symlink /dev/stdin",
            "symlink /dev/stdout",
            "symlink /dev/stderr",
            "symlink /dev/core",
            "tmpfs /dev/shm",
            "tmpfs /tmp",
            "dir /home/dev",
            "bind /home/dev",
            "skel /home/dev",
            "dir /home/dev/app",
            "bind /home/dev/app",
            "mask /proc/acpi",
            "mask /proc/kcore",
            "mask /proc/keys",
            "mask /proc/latency_stats",
            "mask /proc/timer_list",
            "mask /proc/timer_stats",
            "mask /proc/sched_debug",
            "mask /proc/scsi",
            "mask /sys/firmware",
            "mask /sys/dev/block",
            "ro /proc/bus",
            "ro /proc/fs",
            "ro /proc/irq",
            "ro /proc/sys",
            "ro /proc/sysrq-trigger",
            "write /etc/passwd",
            "write /etc/group",
            "write /etc/hosts",
            "write /etc/hostname",
            "write /etc/resolv.conf",
            "dir /home/dev/.m2",
            "bind /home/dev/.m2",
            "bind /dev/sandbox/ca-certificates.crt ro",
            "bind /dev/sandbox/cacerts.jks ro",
            "bind /etc/ssl/certs/ca-certificates.crt ro",
            "bind /etc/ssl/certs/java/cacerts ro",
            "bind /home/dev/.gitconfig ro",
        ]
    );
}
