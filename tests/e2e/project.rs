//! Projects: sandbox.toml and its errors, init, the setup layer, caches, sandbox.lock, trust
//! and completions, end to end as the unprivileged user. Docker Hub is a loopback registry
//! that the user config names as docker.io's mirror.

use std::path::{Path, PathBuf};

use crate::support::oci;
use crate::support::text;
use crate::support::{Registry, TestEnv};

/// A busybox image whose /etc/image-version says `version`, pushed as `repo:tag`.
fn push_busybox(registry: &Registry, repo: &str, tag: &str, version: &str) {
    let mut entries = oci::busybox_full_entries();
    entries.push(oci::Entry::file(
        "etc/image-version",
        format!("{version}\n").as_bytes(),
    ));
    let image = oci::build(&oci::ImageSpec {
        layers: vec![oci::LayerSpec {
            entries,
            compression: oci::Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), repo, tag, &image);
}

/// Sends docker.io to `registry` through the user config.
fn mirror_docker_hub(env: &TestEnv, registry: &Registry) {
    env.write(
        "config/sandbox/config.toml",
        &format!(
            "[[registry]]\nprefix = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{}\"\n",
            registry.host()
        ),
    );
}

/// A loopback "Docker Hub" (docker.io's mirror in the user config) holding a busybox image as
/// `repo:tag`; keep it alive.
fn docker_hub(env: &TestEnv, repo: &str, tag: &str, version: &str) -> Registry {
    let registry = Registry::start();
    push_busybox(&registry, repo, tag, version);
    mirror_docker_hub(env, &registry);
    registry
}

fn write_project(env: &TestEnv, dir: &str, toml: &str) -> PathBuf {
    env.write(&format!("{dir}/sandbox.toml"), toml)
}

fn in_dir(env: &TestEnv, dir: &Path, args: &[&str]) -> std::process::Output {
    env.command(args).current_dir(dir).output().unwrap()
}

/// A table of broken files: the first line of the error names file, line and column.
#[test]
fn config_errors_name_the_file_line_and_column() {
    let env = TestEnv::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "[toolchain\nname = \"java\"\n",
            "1:11: unclosed table, expected `]`",
            "",
        ),
        (
            "[toolchain]\nname = 17\n",
            "2:8: invalid type: integer `17`, expected a string",
            "check the value's type",
        ),
        (
            "[toolchain]\nname = \"java\"\nversoin = \"17\"\n",
            "3:1: unknown field `versoin`, expected one of `name`, `version`, `image`, `setup`",
            "did you mean `version`?",
        ),
        (
            "[toolchain]\nname = \"jav\"\nversion = \"17\"\n",
            "2:8: unknown toolchain `jav`",
            "did you mean `java`?",
        ),
        (
            "[toolchain]\nname = \"java\"\nversion = \"16\"\n",
            "3:11: java has no version `16`",
            "versions 8, 11, 17, 21",
        ),
        (
            "[toolchain]\nname = \"python\"\nversion = 3.10\n",
            "3:11: version must be a string, not float",
            "quote it",
        ),
        (
            "[toolchain]\nimage = \"busybox\"\n[network]\nports = [\"8080:80\", \"80800:80\"]\n",
            "4:21: bad port `80800:80`: `80800` is not a port number (1-65535)",
            "for example",
        ),
        (
            "[toolchain]\nimage = \"busybox\"\n[network]\nmode = \"pastaa\"\n",
            "4:8: unknown network mode `pastaa`",
            "did you mean `pasta`?",
        ),
        (
            "[toolchain]\nimage = \"busybox\"\n[limits]\nmemory = \"2x\"\n",
            "4:10: memory `2x`: unknown unit `x`",
            "\"512m\", \"2g\"",
        ),
        (
            "[toolchain]\nimage = \"busybox\"\n[limits]\npids = 0\n",
            "4:8: pids must be a whole number from 1 to 4194304, not 0",
            "",
        ),
    ];
    for (toml, first, hint) in cases {
        let file = write_project(&env, "project", toml);
        let stderr = env.fails(&["run", "--", "true"]);
        let expected = format!("error: {}:{first}", file.display());
        assert_eq!(
            stderr.lines().next().unwrap_or(""),
            expected,
            "for:\n{toml}\n{stderr}"
        );
        assert!(stderr.contains(" | "), "no snippet for:\n{toml}\n{stderr}");
        assert!(
            stderr.contains('^'),
            "nothing underlined for:\n{toml}\n{stderr}"
        );
        if !hint.is_empty() {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with("hint: ") && l.contains(hint)),
                "hint `{hint}` missing for:\n{toml}\n{stderr}"
            );
        }
    }
    // No sandbox.toml and no --image: say how to make one.
    std::fs::remove_file(env.path().join("project/sandbox.toml")).unwrap();
    let stderr = env.fails(&["run", "--", "true"]);
    assert!(stderr.contains("sandbox init"), "{stderr}");
}

#[test]
fn init_writes_a_template_guessed_from_the_projects_files() {
    let env = TestEnv::new();
    env.write("project/pom.xml", "<project/>");
    let out = env.run(&["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("found pom.xml: using the java template"));
    let toml = std::fs::read_to_string(env.path().join("project/sandbox.toml")).unwrap();
    assert!(toml.contains("name = \"java\"\nversion = \"21\""), "{toml}");
    assert!(
        toml.contains("# Java with the Eclipse Temurin JDK"),
        "{toml}"
    );
    // Its comments name every network mode, the default first.
    assert!(
        toml.contains(
            "# mode = \"relay\"         relay (the default) | pasta | slirp4netns | none | host"
        ),
        "{toml}"
    );
    // An existing file is kept unless --force.
    let stderr = env.fails(&["init", "php@8.2"]);
    assert!(
        stderr.contains("exists already") && stderr.contains("--force"),
        "{stderr}"
    );
    env.ok(&["init", "--force", "php@8.2"]);
    let toml = std::fs::read_to_string(env.path().join("project/sandbox.toml")).unwrap();
    assert!(toml.contains("name = \"php\"\nversion = \"8.2\""), "{toml}");
    // Unknown versions and toolchains list what there is.
    let stderr = env.fails(&["init", "--force", "php@9"]);
    assert!(
        stderr.contains("php has no version `9`") && stderr.contains("8.1, 8.2, 8.3"),
        "{stderr}"
    );
    let stderr = env.fails(&["init", "--force", "cobol"]);
    assert!(
        stderr.contains("go, java, node, php, python, rust"),
        "{stderr}"
    );
    // The project's own files name the version, and the output says which decided.
    env.write(
        "project/pom.xml",
        "<project><properties><maven.compiler.release>17</maven.compiler.release></properties></project>",
    );
    let out = env.run(&["init", "--force"]);
    assert!(
        text(&out.stderr)
            .contains("pom.xml (<maven.compiler.release>) asks for java `17`: version 17"),
        "{}",
        text(&out.stderr)
    );
    let toml = std::fs::read_to_string(env.path().join("project/sandbox.toml")).unwrap();
    assert!(toml.contains("name = \"java\"\nversion = \"17\""), "{toml}");
    env.write("project/.tool-versions", "java 8.0.392\n");
    env.write("project/pom.xml", "<project/>");
    let out = env.run(&["init", "--force", "java"]);
    assert!(
        text(&out.stderr).contains(".tool-versions (java) asks for java `8.0.392`: version 8"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(env.path().join("project/.tool-versions")).unwrap();
    std::fs::remove_file(env.path().join("project/pom.xml")).unwrap();
    // Several toolchains: the first is taken and the others named.
    env.write("project/go.mod", "module example.com/app\n\ngo 1.22\n");
    env.write("project/package.json", "{}");
    env.write(
        "project/Cargo.toml",
        "[package]\nname = \"app\"\nrust-version = \"1.90\"\n",
    );
    let out = env.run(&["init", "--force"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("found go.mod: using the go template")
            && stderr.contains("found package.json too: `sandbox init --force node`")
            && stderr.contains("found Cargo.toml too: `sandbox init --force rust`"),
        "{stderr}"
    );
    // A Rust newer than the template has: an error with the list, never an older compiler.
    let stderr = env.fails(&["init", "--force", "rust"]);
    assert!(
        stderr.contains("Cargo.toml (rust-version) asks for rust `>=1.90`, newer than the template's versions (1.75, ")
            && stderr.contains("image = \"docker.io/library/rust:1.90\""),
        "{stderr}"
    );
    let toml = std::fs::read_to_string(env.path().join("project/sandbox.toml")).unwrap();
    assert!(toml.contains("name = \"go\""), "left as it was: {toml}");
    // nvm's codenames: lts/hydrogen is Node 18.
    env.write("project/.nvmrc", "lts/hydrogen\n");
    env.ok(&["init", "--force", "node"]);
    let toml = std::fs::read_to_string(env.path().join("project/sandbox.toml")).unwrap();
    assert!(toml.contains("name = \"node\"\nversion = \"18\""), "{toml}");
    for file in ["go.mod", "package.json", "Cargo.toml", ".nvmrc"] {
        std::fs::remove_file(env.path().join("project").join(file)).unwrap();
    }
    // Nothing to guess from.
    std::fs::remove_file(env.path().join("project/sandbox.toml")).unwrap();
    let stderr = env.fails(&["init"]);
    assert!(stderr.contains("cannot guess the toolchain"), "{stderr}");
}

/// The php template's image (a busybox stand-in from the loopback "Docker Hub"), a setup layer
/// per step: built once and reused, an appended step runs alone, an edit of step 1 reruns all,
/// a failing step is reported and stores nothing of its own.
#[test]
fn each_setup_step_is_a_layer_built_once_and_rebuilt_from_the_first_edit() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/php", "8.2-cli", "php-8.2");
    let project = |steps: &[&str]| {
        let steps: Vec<String> = steps.iter().map(|s| format!("{s:?}")).collect();
        write_project(
            &env,
            "project",
            &format!(
                "setup = [{}]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n",
                steps.join(", ")
            ),
        );
    };
    let stamp = |n: u32| format!("cat /proc/sys/kernel/random/uuid > /stamp{n}");
    project(&[&stamp(1), &stamp(2)]);
    let show = |files: &str| {
        let out = env.run(&[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            &format!("cat /etc/image-version {files}; echo $COMPOSER_CACHE_DIR"),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (first, stderr) = show("/stamp1 /stamp2");
    assert!(
        stderr.contains("setup: running steps 1-2 of 2 once as root"),
        "{stderr}"
    );
    assert!(first.starts_with("php-8.2\n"), "{first}");
    assert!(
        first.ends_with("/.cache/composer\n"),
        "the template's env, `~` expanded: {first}"
    );
    assert_eq!(env.store_entries("setup").len(), 2, "a layer per step");
    // The second run reuses the layers: setup does not run again.
    let (second, stderr) = show("/stamp1 /stamp2");
    assert!(!stderr.contains("setup:"), "{stderr}");
    assert_eq!(second, first, "the same setup layers");

    // Appending a step runs only that step: the earlier stamps stay.
    project(&[&stamp(1), &stamp(2), &stamp(3)]);
    let (third, stderr) = show("/stamp1 /stamp2 /stamp3");
    assert!(
        stderr.contains("setup: steps 1-2 are stored; running step 3 of 3 once as root"),
        "{stderr}"
    );
    let lines = |out: &str| out.lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        lines(&third)[1..3],
        lines(&first)[1..3],
        "steps 1 and 2 were not rerun"
    );
    assert_eq!(env.store_entries("setup").len(), 3);

    // Editing step 1 reruns it and every step after it.
    project(&[&format!("{} && true", stamp(1)), &stamp(2), &stamp(3)]);
    let (edited, stderr) = show("/stamp1 /stamp2 /stamp3");
    assert!(stderr.contains("running steps 1-3 of 3"), "{stderr}");
    for n in 1..=3 {
        assert_ne!(lines(&edited)[n], lines(&third)[n], "stamp {n} was remade");
    }
    // The layers the edit superseded are listed, counted as reclaimable, and pruned; the
    // current ones stay.
    let ls = env.ok(&["setup", "ls"]);
    assert!(ls.contains("1/3") && ls.contains("3/3"), "{ls}");
    assert!(
        ls.contains("3 layers of this project superseded by edits"),
        "{ls}"
    );
    let pruned = env.ok(&["prune"]);
    assert!(pruned.contains("3 setup layers"), "{pruned}");
    assert_eq!(env.store_entries("setup").len(), 3);
    let ls = env.ok(&["setup", "ls"]);
    assert!(!ls.contains("superseded"), "{ls}");
    let (again, stderr) = show("/stamp1 /stamp2 /stamp3");
    assert!(!stderr.contains("setup:"), "{stderr}");
    assert_eq!(again, edited);

    // A failing step: its number, text, output tail and exit code; it stores nothing, the step
    // before it is stored.
    project(&["echo fine", "echo about to fail; exit 3"]);
    let before = env.store_entries("setup").len();
    let stderr = env.fails(&["run", "--network", "none", "--", "true"]);
    assert!(
        stderr.contains("setup step 2 of 2 failed with exit code 3: echo about to fail; exit 3"),
        "{stderr}"
    );
    assert!(stderr.contains("  | about to fail"), "{stderr}");
    assert_eq!(env.store_entries("setup").len(), before + 1);
    // df counts the setup layers; removing their base image removes them too.
    let df = env.ok(&["df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("setup") && l.contains(&format!(" {} ", before + 1))),
        "{df}"
    );
    // Their base is not removed while this project's setup chain stands on it, unless
    // --force, which removes them with it.
    let err = env.fails(&["rmi", "docker.io/library/php:8.2-cli"]);
    assert!(
        err.contains("is the base of the setup steps of")
            && err.contains(&env.path().join("project").display().to_string())
            && err.contains("sandbox rmi --force"),
        "{err}"
    );
    assert_eq!(env.store_entries("setup").len(), before + 1);
    let removed = env.ok(&["rmi", "--force", "docker.io/library/php:8.2-cli"]);
    assert!(
        removed.contains(&format!("{} setup layers", before + 1)),
        "{removed}"
    );
    assert_eq!(
        env.store_entries("setup"),
        Vec::<String>::new(),
        "setup layers outlived their base"
    );
}

/// A version 1 lock (one key for all the setup steps) is read, and `sandbox lock` upgrades it
/// in place to a key per step without asking the registry.
#[test]
fn an_old_lock_is_read_and_upgraded() {
    let env = TestEnv::new();
    let registry = docker_hub(&env, "library/php", "8.2-cli", "php-8.2");
    write_project(
        &env,
        "project",
        "setup = [\"echo one > /one\", \"echo two > /two\"]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n",
    );
    env.ok(&["lock"]);
    // `pull` in a locked project pulls what the lock pins, and names its digest once.
    let pulled = env.ok(&["pull"]);
    assert_eq!(pulled.matches("sha256:").count(), 1, "{pulled}");
    assert!(
        pulled.starts_with("pulled docker.io/library/php@sha256:"),
        "{pulled}"
    );
    let path = env.path().join("project/sandbox.lock");
    let current = fs_err::read_to_string(&path).unwrap();
    assert!(current.contains("version = 2"), "{current}");
    let keys = current.matches("sha256:").count();
    // What an older sandbox wrote: version 1, one setup_key.
    let old = current
        .replace("version = 2", "version = 1")
        .lines()
        .filter(|l| !l.starts_with("setup = [\"sha256") && !l.starts_with("    \"sha256") && *l != "]")
        .collect::<Vec<_>>()
        .join("\n")
        + "\nsetup_key = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n";
    fs_err::write(&path, &old).unwrap();
    env.give_to_user(&path);
    drop(registry);
    // It is still a lock for these inputs: --locked runs with it.
    assert_eq!(
        env.ok(&["run", "--locked", "--network", "none", "--", "cat", "/two"]),
        "two\n"
    );
    let out = env.ok(&["lock"]);
    assert!(
        out.contains("upgraded") && out.contains("from version 1 to 2"),
        "{out}"
    );
    let upgraded = fs_err::read_to_string(&path).unwrap();
    assert_eq!(upgraded, current, "the same lock as one written today");
    assert!(keys >= 4, "digest, manifest and a key per step: {current}");
}

/// The home persists between runs of a project (not another project's), `--fresh-home` starts
/// from an empty one, and `sandbox reset` empties it.
#[test]
fn the_home_persists_per_project_until_reset() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/php", "8.2-cli", "php-8.2");
    write_project(
        &env,
        "project",
        "[toolchain]\nname = \"php\"\nversion = \"8.2\"\n[network]\nmode = \"none\"\n",
    );
    env.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo remembered > ~/note; echo 'ls -l' >> ~/.ash_history",
    ]);
    assert_eq!(
        env.ok(&["run", "--", "sh", "-c", "cat ~/note ~/.ash_history"]),
        "remembered\nls -l\n"
    );
    let fresh = env.run(&["run", "--fresh-home", "--", "sh", "-c", "cat ~/note"]);
    assert!(!fresh.status.success(), "a fresh home has no note");
    // The project (under the home) is still where it is in a fresh home.
    env.write("project/marker", "here\n");
    assert_eq!(
        env.ok(&["run", "--fresh-home", "--", "sh", "-c", "pwd; cat marker"]),
        format!("{}\nhere\n", env.project().display())
    );
    assert_eq!(
        env.ok(&["run", "--", "sh", "-c", "cat ~/note"]),
        "remembered\n",
        "and --fresh-home left the persistent one alone"
    );
    // Another project has its own.
    let other = write_project(
        &env,
        "other",
        "[toolchain]\nname = \"php\"\nversion = \"8.2\"\n[network]\nmode = \"none\"\n",
    );
    let out = in_dir(
        &env,
        other.parent().unwrap(),
        &["run", "--", "sh", "-c", "cat ~/note"],
    );
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let reset = env.ok(&["reset"]);
    assert!(reset.starts_with("emptied the home of"), "{reset}");
    let gone = env.run(&["run", "--", "sh", "-c", "cat ~/note"]);
    assert!(!gone.status.success(), "{}", text(&gone.stdout));
}

/// A template on the team's own image: the template's env and caches, the image named.
#[test]
fn a_template_runs_on_the_users_own_image() {
    let env = TestEnv::new();
    let registry = docker_hub(&env, "library/php", "8.2-cli", "php-8.2");
    push_busybox(&registry, "team/php", "custom", "team-php");
    write_project(
        &env,
        "project",
        "[toolchain]\nname = \"php\"\nversion = \"8.2\"\nimage = \"docker.io/team/php:custom\"\n[network]\nmode = \"none\"\n",
    );
    let out = env.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "cat /etc/image-version; echo $COMPOSER_CACHE_DIR",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "team-php", "the user's image: {out}");
    assert!(
        lines[1].ends_with("/.cache/composer"),
        "the template's env: {out}"
    );
}

/// What `go install` puts in ~/go/bin runs by its name, as in the official image and with
/// mise; a project extends PATH with `$PATH` in its own [env]. `npm install -g` installs into
/// the home, on PATH.
#[test]
fn programs_installed_into_the_home_are_on_path() {
    let env = TestEnv::new();
    let registry = docker_hub(&env, "library/golang", "1.23", "go-1.23");
    push_busybox(&registry, "library/node", "22", "node-22");
    let node = write_project(
        &env,
        "node-app",
        "[toolchain]\nname = \"node\"\nversion = \"22\"\n[network]\nmode = \"none\"\n",
    );
    let out = in_dir(
        &env,
        node.parent().unwrap(),
        &["run", "--", "sh", "-c", "echo $npm_config_prefix $PATH"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let home = env.passwd_home();
    assert_eq!(
        text(&out.stdout),
        format!("{0}/.local {0}/.local/bin:/bin:/usr/bin\n", home.display())
    );
    write_project(
        &env,
        "project",
        "[toolchain]\nname = \"go\"\nversion = \"1.23\"\n[network]\nmode = \"none\"\n[env]\nPATH = \"$PATH:~/tools\"\n",
    );
    let out = env.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "mkdir -p ~/go/bin ~/tools && printf '#!/bin/sh\\necho installed tool\\n' > ~/go/bin/gotool && chmod +x ~/go/bin/gotool && gotool && echo $PATH",
    ]);
    let home = env.passwd_home();
    assert_eq!(
        out,
        format!(
            "installed tool\n{}/go/bin:/bin:/usr/bin:{}/tools\n",
            home.display(),
            home.display()
        )
    );
}

/// Go's module cache is read-only, as Go makes it: `go clean -modcache` (which removes the
/// dir itself) works inside, and `sandbox cache rm` removes it whole from outside.
#[test]
fn a_read_only_module_cache_is_cleaned_inside_and_removed_outside() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/golang", "1.23", "go-1.23");
    write_project(
        &env,
        "project",
        "[toolchain]\nname = \"go\"\nversion = \"1.23\"\n[network]\nmode = \"none\"\n",
    );
    // What a download leaves: module dirs and files without write permission.
    let fill = "mkdir -p $GOMODCACHE/example.com/m@v1 && echo module > $GOMODCACHE/example.com/m@v1/go.mod && chmod -R a-w $GOMODCACHE/example.com";
    // What `go clean -modcache` does: open it up, then remove the whole dir.
    let out = env.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        &format!("{fill} && chmod -R u+w $GOMODCACHE && rm -rf $GOMODCACHE && echo cleaned"),
    ]);
    assert_eq!(out, "cleaned\n");
    env.ok(&["run", "--", "sh", "-c", fill]);
    let listed = env.ok(&["cache", "ls"]);
    assert!(listed.contains("go/modules"), "{listed}");
    let removed = env.ok(&["cache", "rm", "go/modules"]);
    assert!(removed.starts_with("removed cache go/modules"), "{removed}");
    let listed = env.ok(&["cache", "ls"]);
    assert!(!listed.contains("go/modules"), "{listed}");
    // A store of its own (--root) has caches of its own, inside it.
    let other = env.path().join("other-store");
    let other = other.to_str().unwrap();
    env.ok(&["--root", other, "run", "--", "sh", "-c", fill]);
    assert!(std::path::Path::new(other)
        .join("caches/go/modules/mod")
        .is_dir());
    assert!(env
        .ok(&["--root", other, "cache", "ls"])
        .contains("go/modules"));
    assert!(!env.ok(&["cache", "ls"]).contains("go/modules"));
}

/// A copy step puts project files into the image as root's, modes kept, and is rebuilt when a
/// file changes; a path leaving the project, or a link out of it, is refused.
#[test]
fn copy_steps_bring_project_files_in_and_never_files_from_outside() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/php", "8.2-cli", "php-8.2");
    let dir = write_project(
        &env,
        "project",
        "setup = [{ copy = \"ci/tool.sh\", to = \"/usr/local/bin/tool\" }, { copy = \"ci/conf\", to = \"/etc/app/\" }, \"cat /proc/sys/kernel/random/uuid > /after-copy\"]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n",
    )
    .parent()
    .unwrap()
    .to_owned();
    fs_err::create_dir_all(dir.join("ci/conf")).unwrap();
    fs_err::write(dir.join("ci/tool.sh"), "#!/bin/sh\necho tool v1\n").unwrap();
    std::fs::set_permissions(
        dir.join("ci/tool.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fs_err::write(dir.join("ci/conf/app.ini"), "level = 1\n").unwrap();
    env.give_to_user(&dir);
    let show = || {
        env.ok(&[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "/usr/local/bin/tool; stat -c '%u %g %a' /usr/local/bin/tool; cat /etc/app/conf/app.ini /after-copy",
        ])
    };
    let first = show();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[..3], ["tool v1", "0 0 755", "level = 1"], "{first}");
    // Editing a copied file rebuilds from that step on.
    fs_err::write(dir.join("ci/tool.sh"), "#!/bin/sh\necho tool v2\n").unwrap();
    let second = show();
    assert!(second.starts_with("tool v2\n"), "{second}");
    assert_ne!(
        second.lines().nth(3),
        first.lines().nth(3),
        "the step after it reran"
    );

    // A link out of the project is refused by name, and nothing of its target is stored.
    let outside = env.path().join("outside-secret");
    fs_err::write(&outside, "TOP SECRET\n").unwrap();
    env.give_to_user(&outside);
    std::os::unix::fs::symlink(&outside, dir.join("ci/leak")).unwrap();
    write_project(
        &env,
        "project",
        "setup = [{ copy = \"ci/leak\", to = \"/leak\" }]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n",
    );
    let stderr = env.fails(&["run", "--network", "none", "--", "true"]);
    assert!(
        stderr.contains("ci/leak") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    let leaked = std::process::Command::new("grep")
        .args(["-r", "-l", "TOP SECRET"])
        .arg(env.store())
        .output()
        .unwrap();
    assert!(leaked.stdout.is_empty(), "{}", text(&leaked.stdout));
    // `..` is refused where the file says it, with its line and column.
    write_project(
        &env,
        "project",
        "setup = [{ copy = \"../outside-secret\", to = \"/x\" }]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n",
    );
    let stderr = env.fails(&["run", "--network", "none", "--", "true"]);
    assert!(
        stderr.contains("sandbox.toml:1:19") && stderr.contains("not a path inside the project"),
        "{stderr}"
    );
}

/// A secret reaches its step's environment only: not the layer, not the lock, not a later
/// command; and a project file asking for one needs `sandbox trust`.
#[test]
fn a_secret_is_seen_by_its_step_and_stored_nowhere() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/php", "8.2-cli", "php-8.2");
    write_project(
        &env,
        "project",
        "setup = [{ run = \"test ${#DEPLOY_TOKEN} = 12 && echo token-seen > /seen\", secrets = [\"DEPLOY_TOKEN\"] }]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n",
    );
    let stderr = env.fails(&["run", "--network", "none", "--", "true"]);
    assert!(
        stderr.contains("DEPLOY_TOKEN") && stderr.contains("sandbox trust"),
        "a project asking for a secret needs trust: {stderr}"
    );
    env.ok(&["trust"]);
    let stderr = env.fails(&["run", "--network", "none", "--", "true"]);
    assert!(stderr.contains("needs the secret DEPLOY_TOKEN"), "{stderr}");
    let out = env
        .command(&[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "cat /seen; echo \"[${DEPLOY_TOKEN:-}]\"",
        ])
        .env("DEPLOY_TOKEN", "s3cr3t-value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "token-seen\n[]\n",
        "the command does not see it"
    );
    env.ok(&["lock"]);
    let found = std::process::Command::new("grep")
        .args(["-r", "-l", "s3cr3t-value"])
        .arg(env.store())
        .arg(env.path().join("project"))
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "the secret was stored: {}",
        text(&found.stdout)
    );
}

/// `kill -9` of sandbox while a setup step runs: the step's container goes with it, nothing
/// half-made stays in the store, and the next run builds the layer.
#[test]
fn a_killed_setup_leaves_no_process_and_a_consistent_store() {
    use std::io::BufRead as _;
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/php", "8.3-cli", "php");
    let marker = format!("sleep 4{}", std::process::id() % 1000);
    write_project(&env, "project", &format!("setup = [\"echo started; exec {marker}\"]\n[toolchain]\nname = \"php\"\nversion = \"8.3\"\n[network]\nmode = \"none\"\n"));
    let mut child = env
        .command(&["run", "--", "true"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("started"))),
        "the setup step did not start"
    );
    let running = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .any(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == marker)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !running() {
        assert!(
            std::time::Instant::now() < deadline,
            "`{marker}` did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    while running() {
        assert!(
            std::time::Instant::now() < deadline,
            "`{marker}` outlived sandbox"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        env.store_entries("setup").is_empty(),
        "{:?}",
        env.store_entries("setup")
    );
    // The next run recovers: builds the layer (a quick step now) and clears the leftovers.
    write_project(&env, "project", "setup = [\"echo quick\"]\n[toolchain]\nname = \"php\"\nversion = \"8.3\"\n[network]\nmode = \"none\"\n");
    env.ok(&["run", "--", "true"]);
    env.ok(&["prune"]);
    env.assert_store_consistent();
    assert_eq!(env.store_entries("setup").len(), 1);
}

/// sandbox.lock pins the digest: the same image after the tag moves and with the registry
/// gone; --locked refuses, with a diff, once sandbox.toml changed.
#[test]
fn the_lock_pins_the_image_and_locked_refuses_after_an_edit() {
    let env = TestEnv::new();
    let registry = docker_hub(&env, "library/php", "8.3-cli", "first");
    write_project(
        &env,
        "project",
        "[toolchain]\nname = \"php\"\nversion = \"8.3\"\n",
    );
    let stderr = env.fails(&["run", "--locked", "--", "true"]);
    assert!(stderr.contains("has no sandbox.lock"), "{stderr}");
    // A symlink planted where the lock goes (the project dir is writable from inside) is
    // replaced, never followed.
    let victim = env.write("victim", "precious\n");
    std::os::unix::fs::symlink(&victim, env.path().join("project/sandbox.lock")).unwrap();
    let out = env.ok(&["lock", "--update"]);
    assert!(out.contains("sandbox.lock"), "{out}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        !std::fs::symlink_metadata(env.path().join("project/sandbox.lock"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let lock = std::fs::read_to_string(env.path().join("project/sandbox.lock")).unwrap();
    assert!(
        lock.contains("image = \"docker.io/library/php:8.3-cli\"")
            && lock.contains("manifest = \"sha256:"),
        "{lock}"
    );
    assert!(env.ok(&["lock"]).contains("up to date"));

    // The tag moves: the lock still gives the first image.
    push_busybox(&registry, "library/php", "8.3-cli", "second");
    let cat = [
        "run",
        "--locked",
        "--network",
        "none",
        "--",
        "cat",
        "/etc/image-version",
    ];
    assert_eq!(env.ok(&cat), "first\n");
    // Not stored any more: the pinned digest is pulled and stored under the tag it came from,
    // one entry in `images`, not a second `repo@sha256:...`.
    env.ok(&["rmi", "docker.io/library/php:8.3-cli"]);
    assert_eq!(env.ok(&cat), "first\n");
    let images: serde_json::Value = serde_json::from_str(&env.ok(&["images", "--json"])).unwrap();
    let images = images.as_array().unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["reference"], "docker.io/library/php:8.3-cli");
    // `ps` names it by its tag and a short digest.
    let mut running = env
        .command(&["run", "--locked", "--network", "none", "--", "sleep", "20"])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let shown = loop {
        let ps: serde_json::Value = serde_json::from_str(&env.ok(&["ps", "--json"])).unwrap();
        if let Some(image) = ps[0]["image"].as_str() {
            break image.to_owned();
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "the sandbox did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = running.kill();
    let _ = running.wait();
    assert!(
        shown.starts_with("docker.io/library/php:8.3-cli (") && !shown.contains('@'),
        "{shown}"
    );
    // And with the registry gone.
    drop(registry);
    assert_eq!(env.ok(&cat), "first\n");

    // An edit of sandbox.toml: --locked refuses and shows what changed.
    write_project(
        &env,
        "project",
        "[toolchain]\nname = \"php\"\nversion = \"8.3\"\n[env]\nAPP_ENV = \"dev\"\n",
    );
    let stderr = env.fails(&cat);
    assert!(
        stderr.contains("--locked: sandbox.toml no longer matches sandbox.lock"),
        "{stderr}"
    );
    assert!(
        stderr.contains("+ APP_ENV = \"dev\"") || stderr.contains("+ [env]"),
        "{stderr}"
    );
    assert!(stderr.contains("sandbox lock"), "{stderr}");
}

#[test]
fn caches_persist_and_are_shared_by_a_toolchains_projects() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/php", "8.1-cli", "php");
    let toml = "[toolchain]\nname = \"php\"\nversion = \"8.1\"\n[caches]\nextra = \"~/.extra\"\n";
    write_project(&env, "project", toml);
    let second = write_project(&env, "other", toml)
        .parent()
        .unwrap()
        .to_owned();
    env.ok(&[
        "run",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "echo from-one > ~/.cache/composer/package; echo x > ~/.extra/e",
    ]);
    let out = in_dir(
        &env,
        &second,
        &[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "cat ~/.cache/composer/package ~/.extra/e",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-one\nx\n");
    // On the host, owned by the user.
    let host = env.path().join("cache/sandbox/caches/php/composer/package");
    let meta = std::fs::metadata(&host).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), env.uid());
    let ls = env.ok(&["cache", "ls"]);
    assert!(
        ls.contains("php/composer") && ls.contains("php/extra"),
        "{ls}"
    );
    env.ok(&["cache", "rm", "composer"]);
    assert!(!host.exists());
    let stderr = env.fails(&["cache", "rm", "composer"]);
    assert!(stderr.contains("no cache `composer`"), "{stderr}");
}

#[test]
fn host_access_in_sandbox_toml_needs_trust() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/node", "22", "node");
    let file = write_project(
        &env,
        "project",
        "[toolchain]\nname = \"node\"\nversion = \"22\"\n[network]\nmode = \"host\"\n",
    );
    let stderr = env.fails(&["run", "--", "true"]);
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!("error: {}:5:8: sandbox.toml asks for host access: network.mode = \"host\" shares the host's network", file.display())
    );
    assert!(stderr.contains("sandbox trust"), "{stderr}");
    env.ok(&["trust"]);
    env.ok(&["run", "--", "true"]);
    // An edit needs trust again.
    write_project(&env, "project", "[toolchain]\nname = \"node\"\nversion = \"22\"\n[network]\nmode = \"host\"\n[env]\nX = \"1\"\n");
    env.fails(&["run", "--", "true"]);
}

/// `workdir` sets where commands start; `--config` names a sandbox.toml elsewhere; running
/// containers' ids complete for `sandbox stop`.
#[test]
fn workdir_config_flag_and_container_id_completion() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/golang", "1.23", "go");
    write_project(&env, "project", "workdir = \"cmd/app\"\n[toolchain]\nname = \"go\"\nversion = \"1.23\"\n[network]\nmode = \"none\"\n");
    env.write("project/cmd/app/main.go", "package main\n");
    let pwd = env.ok(&["run", "--", "sh", "-c", "pwd; echo $GOMODCACHE"]);
    let project = env.path().join("project");
    assert!(
        pwd.starts_with(&format!("{}/cmd/app\n", project.display())),
        "{pwd}"
    );
    assert!(pwd.ends_with("/go/pkg/mod\n"), "{pwd}");
    // --config from a dir outside the project.
    let elsewhere = env.path().join("home");
    let out = env
        .command(&[
            "--config",
            &project.join("sandbox.toml").display().to_string(),
            "run",
            "--",
            "cat",
            "/etc/image-version",
        ])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "go\n");
    // A running container's id completes `sandbox stop`.
    let mut running = env.command(&["run", "--", "sleep", "30"]).spawn().unwrap();
    let id = (0..100)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            env.ok(&["ps"])
                .lines()
                .nth(1)
                .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        })
        .expect("the container to show in ps");
    let out = env
        .command(&["--", "sandbox", "stop", ""])
        .env("COMPLETE", "fish")
        .env("SANDBOX_ROOT", env.store())
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains(&id),
        "{id} not offered: {}",
        text(&out.stdout)
    );
    env.ok(&["stop", &id, "--time", "1"]);
    let _ = running.wait();
}

/// The checked-in scripts are what the binary prints, and the binary completes toolchains.
#[test]
fn man_pages_are_current() {
    let env = TestEnv::new();
    let fresh = env.path().join("man");
    env.ok(&["man", &fresh.display().to_string()]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&root),
        names(&fresh),
        "man/ is stale: regenerate it with `sandbox man man`"
    );
    for name in names(&fresh) {
        assert_eq!(
            std::fs::read_to_string(root.join(&name)).unwrap(),
            std::fs::read_to_string(fresh.join(&name)).unwrap(),
            "man/{name} is stale: regenerate it with `sandbox man man`"
        );
    }
    assert!(std::fs::read_to_string(fresh.join("sandbox-run.1"))
        .unwrap()
        .contains("\\-\\-fresh\\-home"));
}

#[test]
fn completions_are_current() {
    let env = TestEnv::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "sandbox.bash"),
        ("zsh", "_sandbox"),
        ("fish", "sandbox.fish"),
    ] {
        let fresh = env.ok(&["completions", shell]);
        let checked_in = std::fs::read_to_string(root.join(file)).unwrap();
        assert_eq!(checked_in, fresh, "completions/{file} is stale: regenerate it with `sandbox completions {shell} > completions/{file}`");
    }
    let out = env
        .command(&["--", "sandbox", "init", "ja"])
        .env("COMPLETE", "fish")
        .output()
        .unwrap();
    let candidates = text(&out.stdout);
    assert!(
        candidates.contains("java@17") && !candidates.contains("php"),
        "{candidates}"
    );
}

/// `[caches] shared = false`: a project's caches are its own, so code in one project cannot
/// leave something in a cache another project of the same toolchain will run.
#[test]
fn unshared_caches_are_the_projects_own() {
    let env = TestEnv::new();
    let _registry = docker_hub(&env, "library/php", "8.1-cli", "php");
    let toml = "[toolchain]\nname = \"php\"\nversion = \"8.1\"\n[caches]\nshared = false\n";
    write_project(&env, "project", toml);
    let second = write_project(&env, "other", toml)
        .parent()
        .unwrap()
        .to_owned();
    env.ok(&[
        "run",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "echo planted > ~/.cache/composer/package",
    ]);
    let out = in_dir(
        &env,
        &second,
        &[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "cat ~/.cache/composer/package || echo absent",
        ],
    );
    assert_eq!(text(&out.stdout).trim(), "absent", "{}", text(&out.stderr));
    // It persists for its own project.
    let out = env.ok(&[
        "run",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "cat ~/.cache/composer/package",
    ]);
    assert_eq!(out.trim(), "planted");
    // A cache other than `shared` needs a path.
    write_project(
        &env,
        "project",
        "[toolchain]\nname = \"php\"\nversion = \"8.1\"\n[caches]\nextra = true\n",
    );
    let stderr = env.fails(&["run", "--", "true"]);
    assert!(stderr.contains("cache `extra` needs a path"), "{stderr}");
}

/// Without a sandbox.toml, `lock` and `setup ls` say how to write one, and suggest --image
/// only for the commands that take it (both refuse it).
#[test]
fn commands_without_a_project_hint_only_what_they_accept() {
    let env = TestEnv::new();
    for command in [&["lock"][..], &["setup", "ls"][..]] {
        let stderr = env.fails(command);
        assert!(
            stderr.contains("hint: write one with `sandbox init`")
                && stderr.contains("`sandbox run` and `sandbox enter` take an image with --image"),
            "{command:?}: {stderr}"
        );
        let mut with_image = command.to_vec();
        with_image.extend(["--image", "docker.io/library/debian:12"]);
        let refused = env.run(&with_image);
        assert!(!refused.status.success(), "{command:?} took --image");
    }
}

/// Ctrl-C during a setup step is an interruption, not a failure of the step: it says so and
/// that running again goes on from there.
#[test]
fn an_interrupted_setup_step_is_not_called_a_failure() {
    let env = TestEnv::new();
    let (_registry, image) = crate::support::pulled_busybox(&env, "setup/interrupted", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!("setup = [\"touch /started; echo step-running; sleep 30\"]\n[toolchain]\nimage = \"{image}\"\n"),
    );
    let mut child = env
        .command(&["run", "--", "true"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once the step runs: its output (on stderr) says so.
    let (lines, seen) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) if line.trim_start() == "| step-running" => break,
            Ok(_) => {}
            Err(e) => panic!("the step did not start: {e}"),
        }
    }
    crate::support::signal(child.id() as i32, libc::SIGINT);
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    };
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("setup step 1 of 1 was interrupted, with exit code 130"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: run again to go on from this step"),
        "{stderr}"
    );
    assert!(!stderr.contains("fix the step"), "{stderr}");
}

/// One sandbox per project: a command joins the running one even after sandbox.toml, the lock
/// or a flag asks for something else, but first says what it cannot take and names
/// `sandbox stop`; with --locked it refuses (it ran in the old sandbox without a word).
#[test]
fn a_join_says_what_the_running_sandbox_does_not_have() {
    let env = TestEnv::new();
    let (_registry, image) = crate::support::pulled_busybox(&env, "join/edited", Vec::new());
    let toml = format!("[toolchain]\nimage = \"{image}\"\n");
    env.write("project/sandbox.toml", &toml);
    let mut first = env
        .command(&["run", "--", "sh", "-c", "touch started; sleep 30"])
        .spawn()
        .unwrap();
    let started = env.path().join("project/started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let running = |env: &TestEnv| {
        let ps: serde_json::Value = serde_json::from_str(&env.ok(&["ps", "--json"])).unwrap();
        ps.as_array().map_or(0, Vec::len)
    };
    // Nothing changed: joined without a word.
    let out = env.run(&["run", "--", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("joining"),
        "{}",
        text(&out.stderr)
    );
    // sandbox.toml edited: still joined, and said.
    env.write(
        "project/sandbox.toml",
        &format!("{toml}[env]\nEDITED = \"1\"\n"),
    );
    let out = env.run(&["run", "--", "true"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("joining the project's running sandbox")
            && stderr.contains("sandbox.toml changed")
            && stderr.contains("`sandbox stop "),
        "{stderr}"
    );
    assert_eq!(running(&env), 1, "a second sandbox started");
    // Flags that apply only at start are named.
    let out = env.run(&[
        "run",
        "--memory",
        "64m",
        "-v",
        "/etc/hostname:/mnt/h",
        "--",
        "true",
    ]);
    assert!(
        text(&out.stderr).contains("--memory, -v take effect only when a sandbox starts"),
        "{}",
        text(&out.stderr)
    );
    // --locked refuses to run in a sandbox the files no longer make.
    env.ok(&["lock"]);
    let out = env.run(&["run", "--locked", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("sandbox.lock changed")
            && text(&out.stderr).contains("hint: `sandbox stop "),
        "{}",
        text(&out.stderr)
    );
    // Its image is not removed while it runs, even with --force.
    let err = env.fails(&["rmi", "--force", &image]);
    assert!(
        err.contains("is in use by the running sandbox") && err.contains("sandbox stop"),
        "{err}"
    );
    let _ = first.kill();
    let _ = first.wait();
}

/// A template beside the user's own image: the image's JAVA_HOME stays (the template's
/// `/opt/java/openjdk` hid the image's JDK, and mvn failed), the template's fills it only
/// where the image has none, and a `version` given is ignored with a notice.
#[test]
fn a_template_on_an_own_image_keeps_the_images_env() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let base = oci::build(&oci::ImageSpec {
        layers: vec![oci::LayerSpec {
            entries: oci::busybox_full_entries(),
            compression: oci::Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    let with_jdk = oci::rewrite(
        &base,
        |config| {
            config["config"]["Env"] =
                serde_json::json!(["PATH=/bin:/usr/bin", "JAVA_HOME=/usr/lib/jvm/image-jdk"]);
        },
        |_| {},
    );
    oci::push(&registry.url(), "team/jdk", "1", &with_jdk);
    oci::push(&registry.url(), "team/plain", "1", &base);
    for (repo, expected) in [
        ("team/jdk", "/usr/lib/jvm/image-jdk"),
        ("team/plain", "/opt/java/openjdk"),
    ] {
        env.write(
            "project/sandbox.toml",
            &format!(
                "[toolchain]\nname = \"java\"\nversion = \"21\"\nimage = \"{}/{repo}:1\"\n",
                registry.host()
            ),
        );
        let out = env.run(&[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "echo $JAVA_HOME",
        ]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{repo}: {stderr}");
        assert_eq!(text(&out.stdout).trim(), expected, "{repo}: {stderr}");
        assert!(
            stderr.contains("`version = \"21\"` is ignored: `image` decides the version"),
            "{repo}: {stderr}"
        );
    }
}
