//! `memberctl init`: a commented starter config.

use std::io::Write;

use super::{Context, InitArgs, Outcome, Success};
use crate::atomic_write::write_atomically;
use crate::error::Error;

/// The starter config: runs as is on the sandbox provider.
pub const TEMPLATE: &str = r"# yaml-language-server: $schema=schema/memberctl.schema.json
# memberctl configuration. Reference: `memberctl schema`, and the README.
version: 1

providers:
  # The built-in sandbox: no account, no network. Invitations are written to
  # the outbox file (JSON lines) beside this file.
  sandbox:
    type: sandbox
    outbox: memberctl.outbox.jsonl
  # A Networked community (uncomment; the API key comes from the env var):
  # community:
  #   type: networked
  #   api_key_env: NETWORKED_API_KEY
  # An Aptly tenant:
  # workforce:
  #   type: aptly
  #   token_env: APTLY_TOKEN
  #   tenant_id: 00000000-0000-0000-0000-000000000000

# Catalogs map a name you choose to the remote id at each provider.
roles:
  member: { sandbox: role-member }
  moderator: { sandbox: role-moderator }

defaults:
  providers: [sandbox]
  roles: [member]

safety:
  max_changes: 100   # apply refuses to invite or remove more at once

members:
  - email: jane.doe@example.com
    name: Jane Doe
  - email: sam.lee@example.com
    name: Sam Lee
    roles: [moderator]
";

pub(super) fn run(args: &InitArgs, cx: &mut Context<'_>) -> Outcome {
    let path = &args.path;
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::usage(
                format!("`{}` already exists; not overwriting it", path.display()),
                "pass another path: `memberctl init other.yaml`",
            ))
        }
        Err(source) => return Err(Error::io("create", path, source)),
    };
    file.write_all(TEMPLATE.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| Error::io("write", path, e))?;
    cx.ui.println(&format!("Wrote `{}`.", path.display()))?;
    // The modeline points editors at a schema beside the config: write it
    // too, unless one is there already.
    let schema_dir = path.parent().unwrap_or_else(|| std::path::Path::new("")).join("schema");
    let schema_path = schema_dir.join("memberctl.schema.json");
    if !schema_path.exists() {
        std::fs::create_dir_all(&schema_dir).map_err(|e| Error::io("create", &schema_dir, e))?;
        write_atomically(&schema_path, |out| out.write_all(crate::config::schema::config_schema().as_bytes()))?;
        cx.ui.println(&format!("Wrote `{}` for editor completion.", schema_path.display()))?;
    }
    // The next command has to find the file: by default, or by `-c`.
    let next = if path.as_os_str() == crate::config::DEFAULT_CONFIG {
        "memberctl plan".to_owned()
    } else {
        format!("memberctl plan -c {}", path.display())
    };
    cx.ui.println(&format!("Next: `{next}`."))?;
    Ok(Success::Done)
}
