//! Tests that keep the docs honest: examples validate, committed schemas
//! match `memberctl schema` and accept the examples, `--help` is snapshotted.

use crate::support::harness::Test;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_config_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples dir") {
        let dir = entry.expect("entry").path();
        if !dir.join("memberctl.yaml").exists() {
            continue;
        }
        seen += 1;
        // The directory, so team folders (examples/org) are read too.
        let out = Test::new().cmd(&["validate", "-c", dir.to_str().expect("utf-8")]);
        assert_eq!(out.code, 0, "{} does not validate:\n{}", dir.display(), out.rendered());
    }
    assert!(seen >= 2, "expected the quickstart and networked-and-aptly examples, found {seen}");
}

#[test]
fn networked_and_aptly_example_plans_without_credentials() {
    let example = repo().join("examples/networked-and-aptly/memberctl.yaml");
    let out = Test::new().cmd(&["plan", "-c", example.to_str().expect("utf-8"), "--detailed-exitcode"]).expect(2);
    insta::assert_snapshot!("networked_and_aptly_plan", out.rendered());
}

/// The committed schemas are what `memberctl schema` prints: both come
/// from `memberctl::config::schema`, so regenerating them needs no binary.
#[test]
fn committed_config_schema_matches_memberctl_schema() {
    let committed =
        std::fs::read_to_string(repo().join("schema/memberctl.schema.json")).expect("schema/memberctl.schema.json");
    assert!(
        committed == memberctl::config::schema::config_schema(),
        "schema/memberctl.schema.json is stale: run `cargo run -- schema > schema/memberctl.schema.json`"
    );
    // And the binary prints exactly that.
    let printed = crate::support::harness::Test::new().cmd(&["schema"]).expect(0).stdout;
    assert!(printed == committed, "`memberctl schema` prints another schema than the committed one");
    let schema: serde_json::Value = serde_json::from_str(&committed).expect("schema is JSON");
    // yaml-language-server reads draft-07, not schemars' default 2020-12.
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(schema.get("$defs").is_none() && schema["definitions"].is_object(), "draft-07 keeps `definitions`");
}

#[test]
fn committed_plan_schema_matches_memberctl_schema_plan() {
    let committed = std::fs::read_to_string(repo().join("schema/plan.schema.json")).expect("schema/plan.schema.json");
    assert!(
        committed == memberctl::config::schema::plan_schema(),
        "schema/plan.schema.json is stale: run `cargo run -- schema --plan > schema/plan.schema.json`"
    );
    let printed = crate::support::harness::Test::new().cmd(&["schema", "--plan"]).expect(0).stdout;
    assert!(printed == committed, "`memberctl schema --plan` prints another schema than the committed one");
    let schema: serde_json::Value = serde_json::from_str(&committed).expect("schema is JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
}

/// The committed config schema accepts every example, and refuses a typo,
/// so editors using it agree with `memberctl validate`.
#[test]
fn committed_config_schema_validates_the_examples() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("schema/memberctl.schema.json")).expect("schema"))
            .expect("json");
    let validator = jsonschema::draft7::new(&schema).expect("a valid draft-07 schema");
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples dir") {
        let path = entry.expect("entry").path().join("memberctl.yaml");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        seen += 1;
        let instance: serde_json::Value = serde_yaml::from_str(&text).expect("example YAML");
        let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{} does not match the schema: {errors:?}", path.display());
        if seen == 1 {
            let mut typo = instance.clone();
            typo["members"][0]["emial"] = serde_json::Value::from("x@example.com");
            assert!(!validator.is_valid(&typo), "the schema must refuse unknown member keys");
        }
    }
    assert!(seen >= 2, "expected at least two example configs, found {seen}");
}

/// Every property in the config schema has a description, for editors.
#[test]
fn every_schema_property_is_described() {
    let schema: serde_json::Value = serde_json::from_str(&memberctl::config::schema::config_schema()).expect("json");
    let mut missing = Vec::new();
    let mut check = |name: &str, props: &serde_json::Map<String, serde_json::Value>| {
        for (key, value) in props {
            if value.get("description").is_none() {
                missing.push(format!("{name}.{key}"));
            }
        }
    };
    check("root", schema["properties"].as_object().expect("root properties"));
    for (name, def) in schema["definitions"].as_object().expect("definitions") {
        if let Some(props) = def.get("properties").and_then(|p| p.as_object()) {
            check(name, props);
        }
    }
    assert!(missing.is_empty(), "undocumented schema properties: {missing:?}");
}

#[test]
fn help_is_snapshotted() {
    let out = Test::new().cmd(&["--help"]).expect(0);
    insta::assert_snapshot!("help", out.stdout);
    let out = Test::new().cmd(&["plan", "--help"]).expect(0);
    insta::assert_snapshot!("help_plan", out.stdout);
    let out = Test::new().cmd(&["apply", "--help"]).expect(0);
    insta::assert_snapshot!("help_apply", out.stdout);
    let out = Test::new().cmd(&["state", "--help"]).expect(0);
    insta::assert_snapshot!("help_state", out.stdout);
}

/// The README's commands exist: every `memberctl ...` line in a shell block
/// parses (the quickstart itself runs in `lifecycle`).
#[test]
fn readme_commands_parse() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut checked = 0;
    let mut in_shell = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell = line.trim() == "```sh";
            continue;
        }
        if !in_shell {
            continue;
        }
        let line = line.trim().trim_start_matches("$ ");
        let Some(rest) = line.strip_prefix("memberctl ") else { continue };
        let words = shell_words(rest);
        let mut args: Vec<&str> = words
            .iter()
            .map(String::as_str)
            .take_while(|w| !w.starts_with('#') && !matches!(*w, "|" | ">" | "&&"))
            .collect();
        args.push("--help");
        let out = Test::new().cmd(&args);
        assert_eq!(out.code, 0, "README line `{line}` does not parse:\n{}", out.rendered());
        checked += 1;
    }
    assert!(checked >= 5, "expected the README to show memberctl commands, found {checked}");
}

/// Splits a shell line into words, honouring single and double quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}
