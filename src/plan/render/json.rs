//! The JSON plan (also the saved-plan format): `serde_json`'s pretty
//! output of [`Plan`], byte for byte. A large plan's changes are turned into
//! text on two threads, chunk by chunk, by [`super::pretty_json`], and
//! written in order between the rest of the document (a first plan of
//! 100,000 members is 91 MB of JSON).

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::BUFFER;
use crate::plan::{Change, Plan};

/// Changes per chunk; a plan with no more than this is written in one go.
const CHUNK: usize = 2048;

/// Writes `plan` as pretty JSON and a final newline.
pub fn json(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(BUFFER, out);
    if plan.changes.len() <= CHUNK {
        serde_json::to_writer_pretty(&mut out, plan).map_err(io::Error::other)?;
    } else {
        in_chunks(plan, &mut out)?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

/// The top-level `changes` key of a plan with none, as pretty JSON writes
/// it (a newline inside a string is escaped, so this is the key itself).
const NO_CHANGES: &[u8] = b"\n  \"changes\": []";

fn in_chunks(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    let frame = serde_json::to_vec_pretty(&without_changes(plan)).map_err(io::Error::other)?;
    let at = frame
        .windows(NO_CHANGES.len())
        .position(|window| window == NO_CHANGES)
        .map(|start| start + NO_CHANGES.len() - 1)
        .ok_or_else(|| io::Error::other("a plan serialised without its `changes` key"))?;
    // Up to and including the `[`, the changes, then from the `]` on.
    out.write_all(&frame[..at])?;
    let chunks: Vec<&[Change]> = plan.changes.chunks(CHUNK).collect();
    crate::parallel::write_in_order(&chunks, |index, chunk, text| changes_text(chunk, index == 0, text), out)?;
    out.write_all(b"\n  ")?;
    out.write_all(&frame[at..])
}

/// The plan's fields but its changes, for the frame they are written into.
/// (A field added to [`Plan`] fails to compile here until it is added.)
fn without_changes(plan: &Plan) -> Plan {
    let Plan {
        format_version,
        memberctl_version,
        lineage,
        serial,
        state_location,
        config_digest,
        providers,
        changes: _,
        summary,
        no_changes,
        applyable,
        max_changes,
        max_removal_fraction,
        recorded_members,
        warnings,
        refresh,
    } = plan;
    Plan {
        format_version: *format_version,
        memberctl_version: memberctl_version.clone(),
        lineage: *lineage,
        serial: *serial,
        state_location: state_location.clone(),
        config_digest: config_digest.clone(),
        providers: providers.clone(),
        changes: Vec::new(),
        summary: summary.clone(),
        no_changes: *no_changes,
        applyable: *applyable,
        max_changes: *max_changes,
        max_removal_fraction: *max_removal_fraction,
        recorded_members: recorded_members.clone(),
        warnings: warnings.clone(),
        refresh: refresh.clone(),
    }
}

/// What pretty JSON writes for `changes` inside a top-level `changes`
/// array: `{"changes": changes}` puts them at that depth, and the text
/// between its `[` and `]` is theirs (after a `,` unless they come first).
fn changes_text(changes: &[Change], first: bool, text: &mut Vec<u8>) -> io::Result<()> {
    #[derive(Serialize)]
    struct AtPlanDepth<'a> {
        changes: &'a [Change],
    }
    const OPEN: &[u8] = b"{\n  \"changes\": [";
    const CLOSE: &[u8] = b"\n  ]\n}";
    text.reserve(changes.len() * 1024);
    if super::pretty_json::to_vec_pretty(text, &AtPlanDepth { changes }).is_err() {
        // What the fast writer leaves to serde_json: serde_json writes it
        // all again, or says what is wrong.
        text.clear();
        serde_json::to_writer_pretty(&mut *text, &AtPlanDepth { changes }).map_err(io::Error::other)?;
    }
    if !(text.starts_with(OPEN) && text.ends_with(CLOSE)) {
        return Err(io::Error::other("pretty JSON of a chunk of changes did not have the expected frame"));
    }
    text.truncate(text.len() - CLOSE.len());
    let start = OPEN.len() - usize::from(!first);
    if !first {
        text[start] = b',';
    }
    text.drain(..start);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::{json, CHUNK};
    use crate::plan::Plan;

    /// Chunked or not, the text is `serde_json`'s pretty JSON of the plan.
    #[test]
    fn a_plan_in_chunks_is_the_plan_pretty_printed() {
        let yaml = "version: 1\nproviders:\n  sandbox: { type: sandbox }\nroles:\n  member: { sandbox: r1 }\ndefaults:\n  roles: [member]\n";
        let mut members = String::new();
        for i in 0..CHUNK * 2 + 17 {
            writeln!(members, "  - {{ email: m{i}@example.com, name: \"Member \\\"{i}\\\"\\nNext\" }}")
                .expect("writing to a String cannot fail");
        }
        let config =
            crate::config::load_str(std::path::Path::new("memberctl.yaml"), &format!("{yaml}members:\n{members}"))
                .expect("valid config");
        // Every third member recorded with another role and phone (an
        // update, with its fields and their names), and some recorded
        // members no longer configured (removals, with no `after`).
        let mut state = crate::state::State::new();
        for (i, (_, attributes)) in config.desired.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            let mut recorded = attributes.clone();
            recorded.roles = vec!["r0".into()];
            recorded.phone = Some(format!("+1 555 {i}\t"));
            if i % 2 == 0 {
                recorded.email = format!("gone{i}@example.com");
            }
            state.record(
                &crate::provider::Operation::invite("sandbox", recorded),
                &crate::provider::Outcome::Invited(crate::provider::RemoteIds::default()),
                "2026-01-15T09:30:00Z",
            );
        }
        let mut plan = crate::plan::compute(
            &config,
            Some(&state),
            &crate::plan::Scope::default(),
            std::time::SystemTime::UNIX_EPOCH,
        );
        let actions: std::collections::BTreeSet<_> = plan.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions.len(), 3, "invites, updates and removals: {actions:?}");
        plan.warnings.push("a warning, after the changes".to_owned());
        for count in [0, 1, CHUNK, CHUNK + 1, plan.changes.len()] {
            let cut = Plan { changes: plan.changes[..count].to_vec(), ..plan.clone() };
            let mut expected = serde_json::to_vec_pretty(&cut).expect("serialises");
            expected.push(b'\n');
            let mut written = Vec::new();
            json(&cut, &mut written).expect("written");
            assert!(written == expected, "{count} changes differ from serde_json's pretty JSON");
        }
    }
}
