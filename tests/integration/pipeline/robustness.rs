//! The pipeline reader on any input: no panic, no hang, an answer either way.

use std::time::{Duration, Instant};

use proptest::prelude::*;

/// One parse may take at most this long, whatever the input (inputs here are small).
const PARSE_BOUND: Duration = Duration::from_secs(2);

fn parse_is_total(text: &str) {
    let started = Instant::now();
    let result = gantry::pipeline::parse(".gantry/fuzz.yml", text);
    assert!(started.elapsed() < PARSE_BOUND, "slow on {text:?}");
    if let Err(diagnostics) = result {
        assert!(!diagnostics.is_empty());
        for diagnostic in diagnostics {
            assert!(
                diagnostic.line >= 1 && diagnostic.column >= 1,
                "{diagnostic}"
            );
        }
    }
}

const SEED: &str = include_str!("../../../pipelines/rust-service.yml");

/// Characters that matter to YAML, to make mutations hit the grammar.
const YAML_CHARS: &[char] = &[
    ':', '-', ' ', '\n', '\t', '[', ']', '{', '}', '&', '*', '!', '|', '>', '#', '"', '\'', '%',
    '@', '`', ',', '?', '$', '\\', '<', 'a', '0',
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len().max(1);
        match *edit {
            Edit::Insert(at, c) => chars.insert(at % (len + 1).min(chars.len() + 1), c),
            Edit::Delete(at) if !chars.is_empty() => {
                chars.remove(at % chars.len());
            }
            Edit::Replace(at, c) if !chars.is_empty() => {
                let at = at % chars.len();
                chars[at] = c;
            }
            Edit::Duplicate(from, count) if !chars.is_empty() => {
                let from = from % chars.len();
                let end = (from + count % 200).min(chars.len());
                let copy: Vec<char> = chars[from..end].to_vec();
                chars.splice(end..end, copy);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = proptest::sample::select(YAML_CHARS);
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(at, c)| Edit::Insert(at, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c).prop_map(|(at, c)| Edit::Replace(at, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(from, n)| Edit::Duplicate(from, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gets_an_answer(text in "\\PC{0,400}") {
        parse_is_total(&text);
    }

    #[test]
    fn mutated_pipelines_get_an_answer(edits in proptest::collection::vec(edit(), 1..12)) {
        parse_is_total(&apply(SEED, &edits));
    }
}
