//! `extends:` merging and `inherit:` rules, as GitLab applies them to a job.

use serde_json::{Map, Value};

/// GitLab's `extends` merge: hashes merge key by key, anything else is replaced.
pub(super) fn deep_merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                deep_merge(existing, incoming)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

pub(super) struct Inherit {
    pub(super) default: bool,
    variables: Option<Vec<String>>,
    all_variables: bool,
}

impl Inherit {
    pub(super) fn of(job: &Map<String, Value>) -> Self {
        let mut out = Self {
            default: true,
            variables: None,
            all_variables: true,
        };
        if let Some(Value::Object(inherit)) = job.get("inherit") {
            match inherit.get("default") {
                Some(Value::Bool(b)) => out.default = *b,
                Some(Value::Array(keys)) => out.default = keys.iter().any(|k| k == "id_tokens"),
                _ => {}
            }
            match inherit.get("variables") {
                Some(Value::Bool(b)) => out.all_variables = *b,
                Some(Value::Array(keys)) => {
                    out.variables = Some(
                        keys.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        out
    }

    pub(super) fn variable(&self, key: &str) -> bool {
        match &self.variables {
            Some(list) => list.iter().any(|k| k == key),
            None => self.all_variables,
        }
    }
}
