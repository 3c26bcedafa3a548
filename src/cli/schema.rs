//! `memberctl schema`: the JSON Schemas, generated from the loader's types.

use super::{Context, Outcome, SchemaArgs, Success};

/// The config schema (draft-07), as committed in `schema/memberctl.schema.json`.
#[must_use]
pub fn config_schema() -> String {
    let schema = schemars::schema_for!(crate::config::model::ConfigFile);
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}

/// The plan schema, as committed in `schema/plan.schema.json`.
#[must_use]
pub fn plan_schema() -> String {
    let schema = schemars::schema_for!(crate::plan::Plan);
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}

pub(super) fn run(args: &SchemaArgs, cx: &mut Context<'_>) -> Outcome {
    let text = if args.plan { plan_schema() } else { config_schema() };
    cx.ui.print(&text)?;
    Ok(Success::Done)
}
