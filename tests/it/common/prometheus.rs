//! A strict reader of Prometheus's text format (version 0.0.4), for the
//! tests of `/metrics`: every line is a `# HELP`, a `# TYPE` or a sample,
//! and every sample belongs to a family that has both; anything else
//! fails the test, where a lenient parser would skip it.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family name to its `# TYPE`.
    pub types: BTreeMap<String, String>,
    pub helps: BTreeSet<String>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let (name, text) = help.split_once(' ').expect("HELP has a name and a text");
                assert!(!text.trim().is_empty(), "empty HELP for {name}");
                scrape.helps.insert(name.to_owned());
            } else if let Some(kind) = line.strip_prefix("# TYPE ") {
                let (name, kind) = kind.split_once(' ').expect("TYPE has a name and a type");
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "unexpected type {kind} of {name}"
                );
                scrape.types.insert(name.to_owned(), kind.to_owned());
            } else {
                let sample = sample(line);
                let family = scrape.family(&sample.name);
                assert!(scrape.helps.contains(&family), "{family} has no HELP");
                scrape.samples.push(sample);
            }
        }
        scrape
    }

    /// The family a sample is part of: a histogram's `_bucket`, `_sum`
    /// and `_count` are its own name's.
    fn family(&self, name: &str) -> String {
        if self.types.contains_key(name) {
            return name.to_owned();
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| self.types.get(*base).is_some_and(|t| t == "histogram"))
            .unwrap_or_else(|| panic!("sample {name} has no TYPE"))
            .to_owned()
    }

    /// The one sample of `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == labels)
            .collect();
        assert_eq!(found.len(), 1, "samples of {name} {labels:?}: {found:?}");
        found[0].value
    }

    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

/// `name{key="value",...} value`, with the format's escapes in values.
fn sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("not a sample: {line:?}"));
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in {line:?}"
    );
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        while !rest.starts_with('}') {
            let (key, after) = rest.split_once("=\"").expect("a label is key=\"value\"");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("a label value ends") {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().expect("an escape").1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.to_owned(), value);
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        rest = &rest[1..];
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}
