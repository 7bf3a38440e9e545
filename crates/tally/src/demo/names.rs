//! Company and contact names built from word lists, so the demo needs no external data and
//! its customers read like a real B2B customer list.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashSet;

const PREFIXES: &[&str] = &[
    "North", "Blue", "Bright", "Silver", "Red", "Iron", "Clear", "Swift", "Stone", "Green", "Deep",
    "High", "True", "Open", "Quiet", "Bold", "Peak", "Nova", "Terra", "Aero", "Cedar", "Maple",
    "Oak", "Pine", "River", "Harbor", "Summit", "Falcon", "Orbit", "Pixel", "Quantum", "Vector",
    "Atlas", "Lumen", "Polar", "Solar", "Echo", "Cobalt", "Amber", "Coral", "Granite", "Copper",
    "Crystal", "Hyper", "Meta", "Omni", "Prime", "Sky", "Star", "Wave", "Zen", "Arc", "Fern",
    "Willow", "Lake", "Ember", "Frost", "Indigo", "Juniper", "Kite",
];

const ROOTS: &[&str] = &[
    "wind", "peak", "field", "stack", "bridge", "gate", "line", "point", "forge", "works", "light",
    "path", "scale", "mind", "grid", "base", "wave", "loop", "shift", "stream", "cloud", "leaf",
    "craft", "spark", "mark", "nest", "port", "ridge", "sight", "flow", "core", "sphere", "logic",
    "byte", "metric", "signal", "harbor", "vale", "rock", "lane",
];

const SUFFIXES: &[&str] = &[
    "Labs",
    "Analytics",
    "Systems",
    "Technologies",
    "Software",
    "AI",
    "Health",
    "Logistics",
    "Robotics",
    "Digital",
    "Partners",
    "Group",
    "Studio",
    "Networks",
    "Data",
    "Security",
    "Cloud",
    "Media",
    "Finance",
    "Learning",
    "Energy",
    "Bio",
    "Consulting",
    "Commerce",
    "Inc.",
    "GmbH",
    "Ltd",
    "Co.",
];

const FIRST_NAMES: &[&str] = &[
    "anna", "ben", "carla", "david", "elena", "felix", "grace", "hugo", "ines", "jonas", "kate",
    "liam", "maria", "noah", "olivia", "paul", "quinn", "rosa", "sam", "tara", "umar", "vera",
    "will", "xenia", "yusuf", "zoe", "aisha", "bruno", "chloe", "diego", "emma", "farid", "hana",
    "ivan", "julia", "kenji", "lena", "marco", "nina", "oscar", "priya", "raj", "sofia", "tom",
    "lucas", "mei", "ahmed", "sara", "leo", "ana",
];

const MAILBOXES: &[&str] = &[
    "billing", "finance", "ops", "admin", "team", "hello", "accounts", "it",
];

const TLDS: &[&str] = &[
    "com", "com", "com", "io", "io", "ai", "co", "dev", "de", "co.uk", "fr", "app",
];

/// A company name and contact e-mail.
pub struct Identity {
    pub name: String,
    pub email: String,
}

/// Draws names until one is unused, so two customers never share a name (or domain).
pub fn company(rng: &mut impl Rng, used: &mut HashSet<String>) -> Identity {
    for attempt in 0.. {
        let prefix = PREFIXES.choose(rng).expect("non-empty");
        let root = ROOTS.choose(rng).expect("non-empty");
        let suffix = SUFFIXES.choose(rng).expect("non-empty");
        let stem = format!("{prefix}{root}");
        // After many collisions (tiny lists, huge datasets) a number keeps names unique.
        let stem = if attempt < 20 {
            stem
        } else {
            format!("{stem}{attempt}")
        };
        let domain_stem = stem.to_lowercase();
        if !used.insert(domain_stem.clone()) {
            continue;
        }
        let tld = TLDS.choose(rng).expect("non-empty");
        let local = if rng.gen_bool(0.6) {
            let first = FIRST_NAMES.choose(rng).expect("non-empty");
            if rng.gen_bool(0.5) {
                first.to_string()
            } else {
                let last = ROOTS.choose(rng).expect("non-empty");
                format!("{first}.{last}")
            }
        } else {
            MAILBOXES.choose(rng).expect("non-empty").to_string()
        };
        return Identity {
            name: format!("{stem} {suffix}"),
            email: format!("{local}@{domain_stem}.{tld}"),
        };
    }
    unreachable!("the loop only ends by returning")
}
