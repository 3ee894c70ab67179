//! `classes.toml`: classification levels, storage backends and bucket classes (COSI's
//! BucketClass idea: where a logical bucket lives and the limits that hold for it).

use super::PolicyError;
use super::backends::{Backend, BackendEntry, BackendKind, DEFAULT_BACKEND};
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
    /// The name of the backend (in [`Classes::backend`]) its buckets are on.
    pub backend: String,
    /// That backend's kind.
    pub backend_kind: BackendKind,
    /// The bucket (Azure: container) of the backend that holds this class's logical buckets.
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
    /// The limits of this class its backend cannot enforce, which the policy file marks as
    /// advisory (`advisory_limits = true`) and every answer for an upload names:
    /// `max_object_size`, `content_types`.
    pub advisory: Vec<&'static str>,
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
    backends: BTreeMap<String, Backend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassesFile {
    levels: Vec<String>,
    #[serde(default)]
    backends: BTreeMap<String, BackendEntry>,
    classes: BTreeMap<String, ClassEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassEntry {
    #[serde(default)]
    backend: Option<String>,
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
    /// Accept limits the backend cannot enforce, named as advisory in every answer.
    #[serde(default)]
    advisory_limits: bool,
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
        let mut backends = BTreeMap::new();
        backends.insert(DEFAULT_BACKEND.to_owned(), Backend::default_gcs());
        for (name, entry) in file.backends {
            let backend = Backend::parse(&name, entry)
                .map_err(|msg| err(format!("backend {name:?}: {msg}")))?;
            backends.insert(name, backend);
        }
        let mut classes = BTreeMap::new();
        for (name, entry) in file.classes {
            let class_err = |msg: String| err(format!("class {name:?}: {msg}"));
            let backend_name = entry.backend.as_deref().unwrap_or(DEFAULT_BACKEND);
            let backend = backends.get(backend_name).ok_or_else(|| {
                class_err(format!(
                    "backend {backend_name:?} is not defined (define it under [backends.{backend_name}])"
                ))
            })?;
            let backend_bucket =
                BucketName::parse(&entry.backend_bucket).map_err(|e| class_err(e.to_string()))?;
            backend
                .kind
                .check_bucket_name(&entry.backend_bucket)
                .map_err(|e| class_err(format!("backend_bucket: {e}")))?;
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
            let unenforceable: Vec<&'static str> = [
                (
                    "max_object_size",
                    entry.max_object_size.is_some() && !backend.kind.binds_upload_size(),
                ),
                (
                    "content_types",
                    entry.content_types.iter().any(|ct| ct != "*/*")
                        && !backend.kind.binds_content_type(),
                ),
            ]
            .into_iter()
            .filter_map(|(limit, unbound)| unbound.then_some(limit))
            .collect();
            match (unenforceable.is_empty(), entry.advisory_limits) {
                (false, false) => {
                    return Err(class_err(format!(
                        "{} cannot be enforced by backend {backend_name:?} ({}: a signed upload cannot bind it); remove it, or set advisory_limits = true to keep it as advice that every answer names",
                        unenforceable.join(" and "),
                        backend.kind.as_str()
                    )));
                }
                (true, true) => {
                    return Err(class_err(format!(
                        "advisory_limits: backend {backend_name:?} enforces every limit of this class; remove it"
                    )));
                }
                _ => {}
            }
            let class = BucketClass {
                name: name.clone(),
                backend: backend_name.to_owned(),
                backend_kind: backend.kind,
                advisory: unenforceable,
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
            backends,
        })
    }

    /// The class called `name`.
    pub fn get(&self, name: &str) -> Option<&BucketClass> {
        self.classes.get(name)
    }

    /// Every class.
    pub fn iter(&self) -> impl Iterator<Item = &BucketClass> {
        self.classes.values()
    }

    /// The backend called `name` (`gcs` is always defined).
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.get(name)
    }

    /// Every backend some class is on: what the service must be able to sign for.
    pub fn backends_in_use(&self) -> impl Iterator<Item = &Backend> {
        self.backends
            .values()
            .filter(|b| self.classes.values().any(|c| c.backend == b.name))
    }

    /// The class personal buckets are made of.
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

    /// `classes.toml` with one backend and one class `c` on it, beside the required personal.
    fn with_backend(backend: &str, class: &str) -> Result<Classes, PolicyError> {
        Classes::parse(&format!(
            r#"
            levels = ["internal"]
            [backends.store]
            {backend}
            [classes.personal]
            backend_bucket = "bucket-b"
            prefix = "u/{{owner}}/"
            max_ttl_seconds = 60
            classification = "internal"
            release = "delete"
            [classes.c]
            backend = "store"
            prefix = "p/{{project}}/"
            max_ttl_seconds = 3600
            classification = "internal"
            release = "retain"
            {class}"#
        ))
    }

    #[test]
    fn a_class_without_backend_is_on_gcs() {
        let classes =
            Classes::parse(include_str!("../../policies/classes.toml")).expect("shipped classes");
        for class in classes.iter() {
            assert_eq!(class.backend, "gcs", "{}", class.name);
            assert_eq!(class.backend_kind, BackendKind::Gcs);
            assert!(class.advisory.is_empty());
        }
        assert!(classes.backend("gcs").is_some());
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn limits_a_backend_cannot_enforce_are_refused_unless_marked_advisory() {
        let s3 = r#"kind = "s3"
            region = "us-east-1"
            credentials = "env""#;
        let azure = r#"kind = "azure"
            account = "acct"
            credentials = "entra-id""#;
        let cases: [(&str, &str, &str, Result<Vec<&str>, &str>); 8] = [
            (
                "s3 binds size and type",
                s3,
                "backend_bucket = \"b-1\"\nmax_object_size = 10\ncontent_types = [\"image/*\"]",
                Ok(vec![]),
            ),
            (
                "azure with no limits",
                azure,
                "backend_bucket = \"b-1\"",
                Ok(vec![]),
            ),
            (
                "azure with a size limit",
                azure,
                "backend_bucket = \"b-1\"\nmax_object_size = 10",
                Err("max_object_size cannot be enforced"),
            ),
            (
                "azure with content types",
                azure,
                "backend_bucket = \"b-1\"\ncontent_types = [\"image/png\"]",
                Err("content_types cannot be enforced"),
            ),
            (
                "azure, advisory",
                azure,
                "backend_bucket = \"b-1\"\nmax_object_size = 10\ncontent_types = [\"image/png\"]\nadvisory_limits = true",
                Ok(vec!["max_object_size", "content_types"]),
            ),
            (
                "advisory with nothing to advise",
                s3,
                "backend_bucket = \"b-1\"\nmax_object_size = 10\nadvisory_limits = true",
                Err("enforces every limit"),
            ),
            (
                "an S3 bucket name with an underscore",
                s3,
                "backend_bucket = \"b_1\"",
                Err("not an S3 bucket name"),
            ),
            (
                "an Azure container name with a dot",
                azure,
                "backend_bucket = \"b.1\"",
                Err("not an Azure container name"),
            ),
        ];
        for (name, backend, class, want) in cases {
            match (with_backend(backend, class), want) {
                (Ok(classes), Ok(advisory)) => {
                    let c = classes.get("c").expect("class c");
                    assert_eq!(c.backend, "store", "{name}");
                    assert_eq!(c.advisory, advisory, "{name}");
                }
                (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{name}: {got}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_class_on_an_undefined_backend_is_refused() {
        let err = Classes::parse(
            r#"
            levels = ["internal"]
            [classes.personal]
            backend = "minio"
            backend_bucket = "bucket-b"
            prefix = "u/{owner}/"
            max_ttl_seconds = 60
            classification = "internal"
            release = "delete"
            "#,
        )
        .expect_err("undefined backend");
        assert!(err.to_string().contains("[backends.minio]"), "{err}");
    }
}
