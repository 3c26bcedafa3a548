//! The JSON Schemas `memberctl schema` prints, generated from the loader's
//! and the plan's types.
//!
//! They are draft-07 rather than schemars' default 2020-12, because
//! yaml-language-server (the YAML support in VS Code and many editors)
//! validates with draft-07 and ignores what it cannot read.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;

fn draft07<T: JsonSchema>() -> String {
    let schema = SchemaSettings::draft07().into_generator().into_root_schema_for::<T>();
    serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n"
}

/// The config schema, as committed in `schema/memberctl.schema.json`.
#[must_use]
pub fn config_schema() -> String {
    draft07::<super::model::ConfigFile>()
}

/// The plan schema, as committed in `schema/plan.schema.json`.
#[must_use]
pub fn plan_schema() -> String {
    draft07::<crate::plan::Plan>()
}
