//! The documentation stays true: every configuration key the code reads is in
//! `docs/configuration.md`, the example configurations load, and the README starts with the
//! two commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use my2pg::config::{Config, Overrides};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &Path) -> Config {
    // The variables the examples use, with placeholders that pass every check.
    let env = |name: &str| match name {
        "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T0/B0/x".to_owned()),
        "MYSQL_PASSWORD"
        | "PG_PASSWORD"
        | "MY2PG_METRICS_TOKEN"
        | "PAGERDUTY_ROUTING_KEY"
        | "OPS_HOOK_TOKEN"
        | "KAFKA_PASSWORD"
        | "MY2PG_MASK_SALT" => Some("placeholder-secret-value-0123456789".to_owned()),
        _ => None,
    };
    let cfg = Config::load_with_env(Some(path), &Overrides::default(), &env)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    cfg.validate()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    cfg
}

/// Dotted key paths of a serialized configuration (`sync.batch_rows`), entries of lists and
/// user-named map keys (`mapping.columns."db.t.c"`) collapsed to their section.
fn keys(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                // Maps keyed by user names: their entries' keys belong to the section.
                let user_named = matches!(
                    prefix,
                    "mapping.tables" | "mapping.columns" | "tables.schema_map" | "kafka.client"
                ) || prefix.ends_with(".headers");
                let path = if user_named {
                    prefix.to_owned()
                } else if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if !user_named {
                    out.insert(path.clone());
                }
                keys(child, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for i in items {
                keys(i, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_configuration_key_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let mut all = BTreeSet::new();
    // The defaults hold every scalar key; the full example adds the optional ones and the
    // entries of lists (rules, receivers, transforms) and per-table/column overrides.
    keys(
        &serde_json::to_value(Config::default()).unwrap(),
        "",
        &mut all,
    );
    let full = load(&root().join("examples/full.toml"));
    keys(&serde_json::to_value(&full).unwrap(), "", &mut all);
    assert!(all.len() > 60, "too few keys found: {all:?}");
    let mut missing = Vec::new();
    for path in &all {
        let leaf = path.rsplit('.').next().unwrap();
        let section = path.split('.').next().unwrap();
        let section_heading = if section == "transform" {
            "## `[[transform]]`".to_owned()
        } else {
            format!("## `[{section}]`")
        };
        let named = doc.contains(&format!("`{leaf}`"))
            || doc.contains(&format!("[{path}]"))
            || doc.contains(&format!("[[{path}]]"));
        if !doc.contains(&section_heading) || !named {
            missing.push(path.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
}

#[test]
fn the_full_example_sets_every_key() {
    let mut defaults = BTreeSet::new();
    keys(
        &serde_json::to_value(Config::default()).unwrap(),
        "",
        &mut defaults,
    );
    let mut full = BTreeSet::new();
    keys(
        &serde_json::to_value(load(&root().join("examples/full.toml"))).unwrap(),
        "",
        &mut full,
    );
    let unset: Vec<_> = defaults.difference(&full).collect();
    assert!(unset.is_empty(), "examples/full.toml lacks {unset:?}");
}

#[test]
fn the_minimal_example_loads() {
    let cfg = load(&root().join("examples/minimal.toml"));
    assert_eq!(cfg.tables.databases, ["shop"]);
}

#[test]
fn the_readme_starts_with_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first_block = readme
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let lines: Vec<&str> = first_block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 2, "{first_block}");
    assert!(lines[0].starts_with("scripts/setup && target/release/my2pg demo"));
    assert!(lines[1].starts_with("scripts/test"));
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.contains("scripts/test"),
        ".ci/run must run the README's test command"
    );
}
