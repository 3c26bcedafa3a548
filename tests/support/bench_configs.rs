//! Synthetic memberctl configs of any size, shared by the performance
//! harness (`benches/perf.rs`) and the test that every generated config is
//! read by the fast YAML reader (`tests/config_props.rs`), so the benchmark
//! never measures a file the tests do not also check.
#![allow(dead_code, clippy::cast_possible_truncation)]

use std::fmt::Write as _;

/// Members per request in the apply benchmark's config.
pub const BATCH: usize = 100;

pub const FIRST: &[&str] = &[
    "Jane", "John", "Maryam", "Wei", "Olusegun", "Priya", "Carlos", "Ana", "Dmitri", "Fatima", "Hiroshi", "Ingrid",
    "Kwame", "Lucia", "Mateo", "Nadia", "Oliver", "Paulina", "Quentin", "Rosa", "Samuel", "Tomasz", "Uma", "Viktor",
    "Wanjiru", "Xavier", "Yasmin", "Zoltan", "Amelie", "Bjorn", "Chiara", "Dario",
];
pub const LAST: &[&str] = &[
    "Doe",
    "Smith",
    "Okafor",
    "Zhang",
    "Fernandez",
    "Nakamura",
    "Kowalski",
    "Haddad",
    "Johansson",
    "Mbeki",
    "Rossi",
    "Garcia",
    "Ivanova",
    "Nguyen",
    "Oconnell",
    "Patel",
    "Schneider",
    "Van der Berg",
    "Yilmaz",
    "Andersen",
    "Baptiste",
    "Castellanos",
    "Dubois",
    "Eriksson",
];
pub const DOMAINS: &[&str] =
    &["example.com", "example.org", "corp.example.net", "mail.example.io", "students.example.edu"];
pub const NOTES: &[&str] = &[
    "We would love to have you join our community of practitioners.",
    "Welcome aboard! Your onboarding buddy will reach out this week.",
    "Invited by the events team after the spring meetup in Lisbon.",
];
pub const GROUPS: &[&str] = &["engineering", "sales", "support", "marketing", "operations", "finance"];
pub const POSITIONS: &[&str] = &["engineer", "manager", "analyst", "designer"];

pub fn object_id(prefix: u32, n: u32) -> String {
    format!("{prefix:08x}{n:016x}")
}

pub fn uuid_for(prefix: u32, n: u32) -> String {
    format!("{prefix:08x}-{:04x}-4{:03x}-8{:03x}-{n:012x}", n & 0xffff, n & 0xfff, (n >> 4) & 0xfff)
}

/// The catalog and provider part of a config: `community` (networked) and
/// `workforce` (aptly).
pub fn config_header(networked_url: Option<&str>, with_aptly: bool) -> String {
    let mut y = String::from(
        "# Synthetic memberctl benchmark config.\nversion: 1\nproviders:\n  community:\n    type: networked\n",
    );
    if let Some(url) = networked_url {
        let _ = writeln!(y, "    base_url: {url}\n    rate_limit: 0\n    batch_size: {BATCH}\n    concurrency: 4");
    }
    if with_aptly {
        y.push_str("  workforce:\n    type: aptly\n    tenant_id: 42db2b59-b9c6-4705-a0d9-916e597cd4aa\n");
    }
    y.push_str("roles:\n");
    for (i, role) in ["member", "moderator", "admin"].iter().enumerate() {
        let i = i as u32;
        let _ = write!(y, "  {role}: {{ community: {}", object_id(0x69ba_a36b, i));
        if with_aptly {
            let _ = write!(y, ", workforce: {}", uuid_for(0xbbc5_418c, i));
        }
        y.push_str(" }\n");
    }
    let _ = writeln!(y, "  guest: {{ community: {} }}", object_id(0x69ba_a36b, 9));
    if with_aptly {
        for (i, role) in ["employee", "contractor"].iter().enumerate() {
            let _ = writeln!(y, "  {role}: {{ workforce: {} }}", uuid_for(0xbbc5_4190, i as u32));
        }
    }
    y.push_str("plans:\n");
    for (i, plan) in ["pro", "team", "enterprise"].iter().enumerate() {
        let _ = writeln!(y, "  {plan}: {{ community: {} }}", object_id(0x6a1f_0000, i as u32));
    }
    if with_aptly {
        y.push_str("groups:\n");
        for (i, g) in GROUPS.iter().enumerate() {
            let _ = writeln!(y, "  {g}: {{ workforce: {} }}", uuid_for(0xe910_0cc7, i as u32));
        }
        y.push_str("positions:\n");
        for (i, p) in POSITIONS.iter().enumerate() {
            let _ = writeln!(y, "  {p}: {{ workforce: {} }}", uuid_for(0xb545_c2fe, i as u32));
        }
    }
    y.push_str("defaults:\n  providers: [community]\n  roles: [member]\n");
    y
}

pub fn person(rng: &mut fastrand::Rng, i: usize) -> (String, String, String) {
    let first = FIRST[rng.usize(..FIRST.len())];
    let last = LAST[rng.usize(..LAST.len())];
    let domain = DOMAINS[rng.usize(..DOMAINS.len())];
    let local = format!("{first}.{last}.{i}").to_lowercase().replace(' ', "");
    (format!("{local}@{domain}"), first.to_owned(), last.to_owned())
}

/// The plan benchmark's config: 60% community only, 25% workforce only, 15% both.
pub fn plan_config(n: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(n as u64);
    let mut y = config_header(None, true);
    let _ = writeln!(y, "safety:\n  max_changes: {}\nmembers:", n * 2);
    for i in 0..n {
        let (email, first, last) = person(&mut rng, i);
        let kind = rng.u32(..100);
        let _ = writeln!(y, "  - email: {email}");
        if kind < 60 {
            let _ = writeln!(y, "    name: {first} {last}");
            match rng.u32(..10) {
                0 => y.push_str("    roles: [moderator]\n"),
                1 => y.push_str("    roles: [guest]\n"),
                _ => {}
            }
            match rng.u32(..20) {
                0..=3 => y.push_str("    plans: [pro]\n"),
                4 => y.push_str("    plans: [pro, team]\n"),
                5 => y.push_str("    plans: [enterprise]\n"),
                _ => {}
            }
            if rng.u32(..3) == 0 {
                let _ = writeln!(y, "    note: {}", NOTES[rng.usize(..NOTES.len())]);
            }
        } else {
            let both = kind >= 85;
            if both {
                let _ = writeln!(y, "    name: {first} {last}\n    providers: [community, workforce]");
            } else {
                let _ = writeln!(y, "    first_name: {first}\n    last_name: {last}\n    providers: [workforce]");
                let role = if rng.u32(..4) == 0 { "contractor" } else { "employee" };
                let _ = writeln!(y, "    roles: [{role}]");
            }
            let _ = writeln!(y, "    phone: \"+1 (555) {:03}-{:04}\"", rng.u32(..1000), rng.u32(..10_000));
            let g1 = GROUPS[rng.usize(..GROUPS.len())];
            let g2 = GROUPS[rng.usize(..GROUPS.len())];
            if g1 == g2 {
                let _ = writeln!(y, "    groups: [{g1}]");
            } else {
                let _ = writeln!(y, "    groups: [{g1}, {g2}]");
            }
            let _ = writeln!(y, "    primary_group: {g1}");
            let _ = writeln!(y, "    positions: [{}]", POSITIONS[rng.usize(..POSITIONS.len())]);
            if !both && rng.u32(..3) == 0 {
                let _ = writeln!(y, "    manager_id: {}", uuid_for(0x5eed_0000, rng.u32(..50_000)));
            }
        }
    }
    y
}

/// The apply benchmark's config: `n` community members over two plan sets.
/// Answers the config and the expected number of requests.
pub fn apply_config(n: usize, url: &str) -> (String, usize) {
    let mut rng = fastrand::Rng::with_seed(7 + n as u64);
    let mut y = config_header(Some(url), false);
    y.push_str("members:\n");
    let mut with_plan = 0usize;
    for i in 0..n {
        let (email, first, last) = person(&mut rng, i);
        let _ = writeln!(y, "  - email: {email}\n    name: {first} {last}");
        if i % 10 < 3 {
            y.push_str("    plans: [pro]\n");
            with_plan += 1;
        }
        if i % 3 == 0 {
            let _ = writeln!(y, "    note: {}", NOTES[i % NOTES.len()]);
        }
    }
    (y, with_plan.div_ceil(BATCH) + (n - with_plan).div_ceil(BATCH))
}
