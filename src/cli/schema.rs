//! `memberctl schema`: the JSON Schemas (draft-07), generated from the
//! loader's types by [`crate::config::schema`].

use super::{Context, Outcome, SchemaArgs, Success};

pub(super) fn run(args: &SchemaArgs, cx: &mut Context<'_>) -> Outcome {
    let text = if args.plan { crate::config::schema::plan_schema() } else { crate::config::schema::config_schema() };
    cx.ui.print(&text)?;
    Ok(Success::Done)
}
