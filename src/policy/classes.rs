//! `classes.toml`: classification levels and bucket classes (COSI's BucketClass idea: where a
//! logical bucket lives in GCS and the limits that hold for it).

use super::PolicyError;
use crate::signing::{BucketName, Expiry};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What happens to objects when a logical bucket is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Keep the objects; remove only the logical bucket and its grants.
    Retain,
    /// Delete the objects under the bucket's prefix too.
    Delete,
}

/// One bucket class.
#[derive(Clone, Debug)]
pub struct BucketClass {
    pub name: String,
    /// The GCS bucket that holds this class's logical buckets.
    pub backend_bucket: BucketName,
    /// Object-prefix template, with `{owner}` (the owner's subject, encoded by
    /// [`owner_segment`](super::owner_segment)) or `{project}` (the slug).
    pub prefix: String,
    pub max_ttl: Expiry,
    /// Largest object a signed upload may carry, in bytes.
    pub max_object_size: Option<u64>,
    /// Allowed content types for uploads: `type/subtype`, `type/*` or `*/*`.
    pub content_types: Vec<String>,
    /// Index into [`Classes::levels`].
    pub classification: usize,
    pub release: Release,
    pub read_only: bool,
}

impl BucketClass {
    /// Whether an upload of `content_type` is allowed (parameters such as `; charset=` aside).
    pub fn allows_content_type(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some((kind, _)) = essence.split_once('/') else {
            return false;
        };
        self.content_types.iter().any(|allowed| {
            allowed == "*/*"
                || allowed.strip_suffix("/*").is_some_and(|k| k == kind)
                || *allowed == essence
        })
    }

    /// The backend prefix for a bucket owned by `owner` or belonging to `project`.
    /// The owner's subject is an identity provider's string, hostile as any: it is encoded so
    /// that it is one path segment that no other subject encodes to.
    pub fn render_prefix(
        &self,
        owner: Option<&str>,
        project: Option<&super::ProjectSlug>,
    ) -> String {
        let owner = owner.map(super::owner_segment).unwrap_or_default();
        // Neither a slug nor an encoded subject holds a brace: one substitution cannot make
        // another's placeholder.
        self.prefix
            .replace("{project}", project.map_or("", |p| p.as_str()))
            .replace("{owner}", &owner)
    }
}

/// Classification levels (lowest first) and the bucket classes.
#[derive(Clone, Debug)]
pub struct Classes {
    pub levels: Vec<String>,
    classes: BTreeMap<String, BucketClass>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassesFile {
    levels: Vec<String>,
    classes: BTreeMap<String, ClassEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassEntry {
    backend_bucket: String,
    prefix: String,
    max_ttl_seconds: i64,
    max_object_size: Option<u64>,
    #[serde(default = "any_content_type")]
    content_types: Vec<String>,
    classification: String,
    release: Release,
    #[serde(default)]
    read_only: bool,
}

fn any_content_type() -> Vec<String> {
    vec!["*/*".to_owned()]
}

impl Classes {
    /// Parses and checks `classes.toml`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let err = |msg: String| PolicyError::new("classes.toml", msg);
        let file: ClassesFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if file.levels.is_empty() {
            return Err(err(
                "levels: list at least one classification level, lowest first".into(),
            ));
        }
        for (i, level) in file.levels.iter().enumerate() {
            if file.levels[..i].contains(level) {
                return Err(err(format!("levels: {level:?} is listed twice")));
            }
        }
        let mut classes = BTreeMap::new();
        for (name, entry) in file.classes {
            let class_err = |msg: String| err(format!("class {name:?}: {msg}"));
            let backend_bucket =
                BucketName::parse(&entry.backend_bucket).map_err(|e| class_err(e.to_string()))?;
            let max_ttl = Expiry::from_secs(entry.max_ttl_seconds)
                .map_err(|e| class_err(format!("max_ttl_seconds: {e}")))?;
            let classification = file
                .levels
                .iter()
                .position(|l| *l == entry.classification)
                .ok_or_else(|| {
                    class_err(format!(
                        "classification {:?} is not in levels",
                        entry.classification
                    ))
                })?;
            let stripped = entry.prefix.replace("{owner}", "").replace("{project}", "");
            if stripped.contains(['{', '}']) {
                return Err(class_err(
                    "prefix: only {owner} and {project} may be used".into(),
                ));
            }
            if !entry.prefix.is_empty() && !entry.prefix.ends_with('/') {
                return Err(class_err(
                    "prefix: end it with '/' so buckets never share a prefix".into(),
                ));
            }
            for ct in &entry.content_types {
                let valid = ct == "*/*"
                    || ct.split_once('/').is_some_and(|(t, s)| {
                        !t.is_empty()
                            && !s.is_empty()
                            && t != "*"
                            && !t.contains('*')
                            && (s == "*" || !s.contains('*'))
                    });
                if !valid {
                    return Err(class_err(format!(
                        "content type {ct:?}: use type/subtype, type/* or */*"
                    )));
                }
            }
            let class = BucketClass {
                name: name.clone(),
                backend_bucket,
                prefix: entry.prefix,
                max_ttl,
                max_object_size: entry.max_object_size,
                content_types: entry
                    .content_types
                    .iter()
                    .map(|c| c.to_ascii_lowercase())
                    .collect(),
                classification,
                release: entry.release,
                read_only: entry.read_only,
            };
            classes.insert(name, class);
        }
        let personal = classes
            .get("personal")
            .ok_or_else(|| err("class \"personal\" must be defined".into()))?;
        if !personal.prefix.contains("{owner}") {
            return Err(err("class \"personal\": prefix must contain {owner}".into()));
        }
        Ok(Self {
            levels: file.levels,
            classes,
        })
    }

    /// The class called `name`.
    pub fn get(&self, name: &str) -> Option<&BucketClass> {
        self.classes.get(name)
    }

    /// The class personal buckets are made of.
    /// Every class.
    pub fn iter(&self) -> impl Iterator<Item = &BucketClass> {
        self.classes.values()
    }

    pub fn personal(&self) -> &BucketClass {
        // Checked by `parse`.
        &self.classes["personal"]
    }

    /// The index of classification level `name`.
    pub fn level(&self, name: &str) -> Option<usize> {
        self.levels.iter().position(|l| l == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ProjectSlug;

    #[test]
    fn prefixes_render_one_segment_per_owner_or_project() {
        let classes =
            Classes::parse(include_str!("../../policies/classes.toml")).expect("shipped classes");
        let personal = classes.personal();
        let project = classes.get("project").expect("project class");
        let vision = ProjectSlug::parse("vision").expect("slug");
        let cases = [
            (
                "a plain subject",
                personal,
                Some("alice"),
                None,
                "users/alice/",
            ),
            (
                "a subject with a slash",
                personal,
                Some("alice/x"),
                None,
                "users/alice%2Fx/",
            ),
            (
                "a dot-dot subject",
                personal,
                Some(".."),
                None,
                "users/%2E%2E/",
            ),
            (
                "a subject spelling a placeholder",
                personal,
                Some("{project}"),
                None,
                "users/%7Bproject%7D/",
            ),
            (
                "a project",
                project,
                None,
                Some(&vision),
                "projects/vision/",
            ),
        ];
        for (name, class, owner, slug, want) in cases {
            assert_eq!(class.render_prefix(owner, slug), want, "{name}");
        }
    }
}
