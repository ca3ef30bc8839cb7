//! `.gitlab-ci.yml`: a job's `secrets:`, `id_tokens:` and `variables:`, normalised and
//! validated the way GitLab's server does it (runner-semantics §7), producing the `secrets`
//! object GitLab would send to a runner, `server` blocks included.
//!
//! Supported on top of plain jobs: global `variables:`, `default:id_tokens`, `extends:`
//! (deep merge, as GitLab does), `inherit:default` and `inherit:variables`, YAML anchors
//! and merge keys, and local `include:` files ([`CiConfig::load`]; remote, project,
//! template and component includes are reported, not followed).

use crate::error::{Error, ErrorKind};
use serde_json::{Map, Value};

mod entries;
mod gitlab_sm;
mod include;
mod inherit;
mod keywords;
mod normalise;

pub use entries::{parse_aws_short, parse_vault_short};
pub use include::{Include, LoadedConfig, MAX_INCLUDED_FILES};
use inherit::{Inherit, deep_merge};
use keywords::{job_error, parse_id_token, parse_variables};

/// Top-level keys that are not jobs.
const RESERVED: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "types",
    "spec",
];

/// A parsed `.gitlab-ci.yml`.
#[derive(Debug, Clone)]
pub struct CiConfig {
    root: Map<String, Value>,
}

/// One `variables:` entry of a `.gitlab-ci.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiVariable {
    /// The name.
    pub key: String,
    /// The value as written (numbers as their literal).
    pub value: String,
    /// `expand: false` makes the variable raw.
    pub expand: bool,
}

/// One `id_tokens:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenSpec {
    /// The variable that will hold the token.
    pub name: String,
    /// The audiences asked for.
    pub aud: Vec<String>,
}

/// A job of a `.gitlab-ci.yml` with `extends:` and `default:` applied.
#[derive(Debug, Clone)]
pub struct CiJob {
    name: String,
    secrets: Option<Value>,
    id_tokens: Vec<IdTokenSpec>,
    variables: Vec<CiVariable>,
}

impl CiConfig {
    /// Parses YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        // Strict booleans: a field or path such as `n` or `on` stays a string. Duplicate keys:
        // the last wins, as in Ruby's YAML parser.
        let options = serde_saphyr::options! {
            duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::LastWins,
            strict_booleans: true,
        };
        let value: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or("syntax error").to_owned();
            Error::new(
                ErrorKind::InvalidSpec,
                format!("the YAML is malformed: {first}"),
            )
            .with_reference(".gitlab-ci.yml")
        })?;
        match value {
            Value::Object(root) => Ok(Self { root }),
            Value::Null => Ok(Self { root: Map::new() }),
            _ => Err(Error::new(
                ErrorKind::InvalidSpec,
                "the top level must be a mapping of job names to jobs",
            )
            .with_reference(".gitlab-ci.yml")),
        }
    }

    /// The names of the jobs (not hidden `.jobs`, not global keywords), in file order.
    pub fn job_names(&self) -> Vec<&str> {
        self.root
            .iter()
            .filter(|(k, v)| {
                !k.starts_with('.') && !RESERVED.contains(&k.as_str()) && v.is_object()
            })
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The job named `name`, with `extends:`, `default:` and global variables applied.
    pub fn job(&self, name: &str) -> Result<CiJob, Error> {
        if RESERVED.contains(&name) {
            return Err(job_error(
                name,
                format!("`{name}` is a global keyword, not a job"),
            ));
        }
        let Some(Value::Object(_)) = self.root.get(name) else {
            let jobs = self.job_names().join(", ");
            return Err(job_error(name, "no such job in the file".to_owned())
                .with_fix(format!("the jobs are: {jobs}")));
        };
        let job = self.resolve_extends(name, &mut Vec::new())?;
        let inherit = Inherit::of(&job);

        let mut id_tokens = Map::new();
        if inherit.default
            && let Some(Value::Object(default)) = self.root.get("default")
            && let Some(Value::Object(tokens)) = default.get("id_tokens")
        {
            id_tokens = tokens.clone();
        }
        if let Some(tokens) = job.get("id_tokens") {
            match tokens {
                Value::Object(tokens) => id_tokens = tokens.clone(),
                _ => return Err(job_error(name, "id_tokens config should be a hash".into())),
            }
        }
        let id_tokens = id_tokens
            .into_iter()
            .map(|(token, spec)| parse_id_token(name, token, &spec))
            .collect::<Result<_, _>>()?;

        let mut variables = Vec::new();
        if let Some(globals) = self.root.get("variables") {
            for var in parse_variables(name, "variables", globals)? {
                if inherit.variable(&var.key) {
                    variables.push(var);
                }
            }
        }
        if let Some(own) = job.get("variables") {
            variables.extend(parse_variables(
                name,
                &format!("jobs:{name}:variables"),
                own,
            )?);
        }

        Ok(CiJob {
            name: name.to_owned(),
            secrets: job.get("secrets").cloned(),
            id_tokens,
            variables,
        })
    }

    /// Applies `extends:` recursively (GitLab allows 11 levels; so do we).
    fn resolve_extends(
        &self,
        name: &str,
        chain: &mut Vec<String>,
    ) -> Result<Map<String, Value>, Error> {
        if chain.iter().any(|n| n == name) || chain.len() > 10 {
            return Err(job_error(
                chain.first().map_or(name, String::as_str),
                format!("extends chain is circular or too deep at `{name}`"),
            ));
        }
        let Some(Value::Object(job)) = self.root.get(name) else {
            return Err(job_error(
                chain.first().map_or(name, String::as_str),
                format!("extends names `{name}`, which is not defined in this file"),
            ));
        };
        chain.push(name.to_owned());
        let parents = match job.get("extends") {
            None => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    job_error(
                        name,
                        "extends should be a string or an array of strings".into(),
                    )
                })?,
            Some(_) => {
                return Err(job_error(
                    name,
                    "extends should be a string or an array of strings".into(),
                ));
            }
        };
        let mut merged = Map::new();
        for parent in parents {
            let parent = self.resolve_extends(&parent, chain)?;
            deep_merge(&mut merged, parent);
        }
        let mut own = job.clone();
        own.remove("extends");
        deep_merge(&mut merged, own);
        chain.pop();
        Ok(merged)
    }
}

#[cfg(test)]
mod tests;
