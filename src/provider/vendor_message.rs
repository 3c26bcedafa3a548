//! One reading of the free text a vendor puts beside a refused email.
//!
//! The seed APIs answer a refusal per email with a message, not a code
//! (Aptly: `"Email already exists"`; Networked: `data.failure[].error`, or
//! the one-user endpoint's `message`). Whether that message says "this
//! person is already there" decides between *adopted* (recorded, never sent
//! again) and *failed* (planned again). Adopting by mistake hides a member
//! who never joined, so the reading is deliberately narrow: it adopts only
//! on wording that states the member, their account or their invitation
//! exists, and never when the message says the thing is gone or not there
//! (`"invitation already expired"`, `"user does not exist"`). Both HTTP
//! providers ask this one function; its test table holds the vendors' real
//! messages and the variants they are likely to send.

/// Words after "already" that say the member (or the invitation) exists:
/// "already exists", "already a member", "has already been invited", ...
const ALREADY_THERE: &[&str] = &[
    "exist",
    "exists",
    "member",
    "members",
    "invited",
    "registered",
    "in",
    "on",
    "part",
    "added",
    "joined",
    "taken",
    "accepted",
    "pending",
    "sent",
    "enrolled",
    "onboarded",
];

/// Words skipped between "already" and the word that matters.
const FILLER: &[&str] = &["a", "an", "the", "been", "being", "is", "are", "was", "has", "have"];

/// What "has an ..." / "have a ..." must be followed by to say the member is there.
const HELD: &[&str] = &["account", "invitation", "invite", "membership"];

/// Subjects of a bare "exists" ("User exists", "Email already exists").
const SUBJECTS: &[&str] = &["user", "email", "member", "account", "invitation", "invite", "record", "entry"];

/// Words that say the member or invitation is gone or was never there:
/// any of them overrides everything else.
const GONE: &[&str] = &[
    "expired",
    "revoked",
    "cancelled",
    "canceled",
    "deleted",
    "removed",
    "deactivated",
    "disabled",
    "suspended",
    "blocked",
    "banned",
    "rejected",
    "declined",
    "never",
];

/// Phrases that negate existence; they override everything else.
const NEGATIONS: &[&str] = &["not exist", "n't exist", "not found", "not a member", "no longer", "not registered"];

/// Whether a vendor's message about one email says the member (or an
/// invitation for them) already exists, so the address is adopted.
#[must_use]
pub fn says_already_there(message: &str) -> bool {
    let lower = message.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    if words.iter().any(|w| GONE.contains(w)) || NEGATIONS.iter().any(|n| lower.contains(n)) {
        return false;
    }
    if words.iter().any(|w| *w == "duplicate" || *w == "duplicated") {
        return true;
    }
    words.iter().enumerate().any(|(i, word)| match *word {
        "already" => {
            words[i + 1..].iter().find(|w| !FILLER.contains(w)).is_some_and(|next| ALREADY_THERE.contains(next))
                || held_after(&words[i + 1..])
        }
        "exists" | "exist" => {
            i > 0 && words[..i].iter().rev().find(|w| **w != "already").is_some_and(|w| SUBJECTS.contains(w))
        }
        _ => false,
    })
}

/// "has an account", "have a pending invitation", at the start of `words`.
fn held_after(words: &[&str]) -> bool {
    let mut rest = words.iter().skip_while(|w| matches!(**w, "been" | "is"));
    matches!(rest.next(), Some(&("has" | "have")))
        && rest.find(|w| !matches!(**w, "a" | "an" | "the" | "pending" | "active")).is_some_and(|w| HELD.contains(w))
}

#[cfg(test)]
mod tests {
    use super::says_already_there;

    // Regression: #9 defect 6. Networked adopted on any message containing
    // "already" (so "already expired" adopted) and Aptly on three phrases of
    // its own; both now read messages here. The seed messages come first.
    #[test]
    fn one_table_of_vendor_messages() {
        let table: &[(&str, bool)] = &[
            // Seeds: Aptly bulk-invite `data.results[].message`.
            ("Email already exists", true),
            ("Invitation sent successfully", false),
            // Seeds: Networked envelopes (never per-email reasons).
            ("Operation completed successfully", false),
            // Realistic variants that mean "already there".
            ("User already exists", true),
            ("User already a member", true),
            ("User is already a member of this community", true),
            ("already member", true),
            ("User already invited", true),
            ("This user has already been invited to the community", true),
            ("Email has already been taken", true),
            ("email is already in use", true),
            ("User already in tenant", true),
            ("User already registered", true),
            ("Invite already sent", true),
            ("Invitation already pending for this email", true),
            ("invitation already accepted", true),
            ("Cannot invite: user already a member", true),
            ("User already has an account", true),
            ("user has already a pending invitation", true),
            ("User exists", true),
            ("Email exists", true),
            ("Duplicate email", true),
            ("duplicate key error: email", true),
            ("E-MAIL ALREADY EXISTS", true),
            // "already", but not there: the bug this table guards.
            ("invitation already expired", false),
            ("Invitation has already expired", false),
            ("invite already revoked", false),
            ("User already removed from community", false),
            ("Invitation was already cancelled", false),
            ("User has already declined the invitation", false),
            ("Invitation limit already reached", false),
            ("Request already processing", false),
            // Not there at all.
            ("Role does not exists", false),
            ("User does not exist", false),
            ("user doesn't exist", false),
            ("User not found", false),
            ("User is not a member", false),
            ("Invalid email", false),
            ("tagId is required", false),
            ("Plan exists but is archived", false),
            ("", false),
        ];
        let wrong: Vec<String> = table
            .iter()
            .filter(|(message, adopted)| says_already_there(message) != *adopted)
            .map(|(message, adopted)| format!("{message:?} should {}adopt", if *adopted { "" } else { "not " }))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
