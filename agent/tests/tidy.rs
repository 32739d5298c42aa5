//! Workspace tidy checks (STYLE.md §1, §8, §10): crate edges point down only, members share the
//! workspace lints, dependencies use caret requirements, and every Rust file opens with `//!` docs.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn members() -> Vec<String> {
    let manifest: toml::Table = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

fn manifest(member: &str) -> toml::Table {
    std::fs::read_to_string(workspace_root().join(member).join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

/// Workspace crates a member depends on, in any dependency table.
fn workspace_edges(member: &str) -> Vec<String> {
    let members = members();
    let manifest = manifest(member);
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|table| manifest.get(*table).and_then(|t| t.as_table()))
        .flat_map(|table| table.keys().cloned())
        .filter(|name| members.contains(name))
        .collect()
}

#[test]
fn crate_edges_point_down_only() {
    // What each crate may depend on (DESIGN.md §2); vm-tests drives everything.
    let allowed: &[(&str, &[&str])] = &[
        ("settings", &[]),
        ("platform", &["settings"]),
        ("jobs", &["platform", "settings"]),
        ("agent", &["jobs", "platform", "settings"]),
        // thin-director reads multi-digests from `settings` (a leaf crate that touches no OS).
        ("thin-director", &["agent", "settings"]),
        ("stemcell-builder", &["platform"]),
        (
            "vm-tests",
            &[
                "agent",
                "jobs",
                "platform",
                "settings",
                "thin-director",
                "stemcell-builder",
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for member in members() {
        let permitted = allowed
            .iter()
            .find(|(name, _)| *name == member)
            .unwrap_or_else(|| {
                panic!(
                    "crate {member} is not in the tidy test's table: add it with its allowed edges"
                )
            })
            .1;
        for edge in workspace_edges(&member) {
            if !permitted.contains(&edge.as_str()) {
                wrong.push(format!("{member} -> {edge}"));
            }
        }
    }
    assert!(wrong.is_empty(), "forbidden crate edges: {wrong:?}");
}

#[test]
fn agent_is_shared_without_the_daemon_feature() {
    // Crates other than vm-tests reach `agent` through the workspace entry, which must keep the
    // daemon (and so the platform code) out of a director's build.
    let root: toml::Table = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let agent = &root["workspace"]["dependencies"]["agent"];
    assert_eq!(
        agent.get("default-features").and_then(|v| v.as_bool()),
        Some(false)
    );
    for member in members() {
        let manifest = manifest(&member);
        if let Some(dep) = manifest.get("dependencies").and_then(|d| d.get("agent")) {
            assert!(
                dep.get("workspace").is_some() && dep.get("default-features").is_none(),
                "{member}: depend on agent with `agent.workspace = true`"
            );
        }
    }
}

#[test]
fn members_use_workspace_lints_and_are_unpublished() {
    for member in members() {
        let manifest = manifest(&member);
        assert_eq!(
            manifest
                .get("lints")
                .and_then(|l| l.get("workspace"))
                .and_then(|w| w.as_bool()),
            Some(true),
            "{member}: set [lints] workspace = true"
        );
        let publish = &manifest["package"]["publish"];
        assert!(
            publish.as_bool() == Some(false) || publish.get("workspace").is_some(),
            "{member}: set publish = false (or publish.workspace = true)"
        );
    }
}

#[test]
fn dependency_versions_are_caret_requirements() {
    let manifest: toml::Table = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deps = manifest["workspace"]["dependencies"].as_table().unwrap();
    let mut wrong = Vec::new();
    for (name, spec) in deps {
        let version = match spec {
            toml::Value::String(v) => Some(v.as_str()),
            toml::Value::Table(t) => t.get("version").and_then(|v| v.as_str()),
            _ => None,
        };
        if let Some(version) = version {
            if version.starts_with(['=', '<', '>', '~']) || version.contains('*') {
                wrong.push(format!("{name} = {version:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "use caret requirements: {wrong:?}");
}

#[test]
fn every_rust_file_starts_with_module_docs() {
    let mut missing = Vec::new();
    for member in members() {
        let mut stack = vec![workspace_root().join(&member)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path
                        .file_name()
                        .is_some_and(|n| n != "target" && n != "fixtures")
                    {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if !text.trim_start().starts_with("//!") {
                        missing.push(
                            path.strip_prefix(workspace_root())
                                .unwrap()
                                .display()
                                .to_string(),
                        );
                    }
                }
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "files without //! module docs: {missing:?}"
    );
}

#[test]
fn only_platform_cmd_and_the_directors_exec_spawn_processes() {
    let mut offenders = Vec::new();
    for member in members() {
        // Test harnesses may run programs (STYLE.md §3); the agent's code goes through
        // platform::cmd, the director's (which never links platform code) through its `exec`.
        let src = workspace_root().join(&member).join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let relative = path
                        .strip_prefix(workspace_root())
                        .unwrap()
                        .display()
                        .to_string();
                    if text.contains("process::Command")
                        && !relative.starts_with("platform/src/cmd/")
                        && relative != "thin-director/src/exec.rs"
                        && member != "vm-tests"
                    {
                        offenders.push(relative);
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "std::process::Command outside platform::cmd and thin_director::exec: {offenders:?}"
    );
}
