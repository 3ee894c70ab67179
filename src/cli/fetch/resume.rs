//! What a run starts from: the names an `--objects` file lists, and what an interrupted run
//! already wrote to the output file (a cut-off last line is dropped, so the rerun rewrites it).

use crate::api::ManifestLine;
use std::collections::HashSet;
use std::path::Path;

/// What an output file already holds.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Complete lines: the URLs written by earlier runs.
    pub(super) lines: u64,
    /// Their objects: what a list run skips.
    pub(super) done: HashSet<String>,
    /// The last of them: where a prefix run starts after.
    pub(super) last: Option<String>,
}

/// Reads what an earlier run wrote to `path`, truncating a last line cut off mid-way.
pub(super) fn resume_point(path: &Path) -> Result<Progress, String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot repair {}: {e}", path.display()))?;
        file.set_len(complete as u64)
            .map_err(|e| format!("cannot repair {}: {e}", path.display()))?;
    }
    let mut progress = Progress::default();
    for line in text[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let line: ManifestLine = serde_json::from_slice(line).map_err(|_| {
            format!(
                "{} holds a line that is not a manifest line",
                path.display()
            )
        })?;
        progress.lines += 1;
        progress.done.insert(line.object.clone());
        progress.last = Some(line.object);
    }
    Ok(progress)
}

/// The names an `--objects` file lists, each once in the order first listed, and how many
/// lines repeated an earlier name. Blank lines are skipped.
pub(super) fn read_names(file: &Path) -> Result<(Vec<String>, usize), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    let mut repeated = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if seen.insert(line) {
            names.push(line.to_owned());
        } else {
            repeated += 1;
        }
    }
    Ok((names, repeated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("resume-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join(name);
        std::fs::write(&file, contents).expect("write");
        file
    }

    #[test]
    fn repeated_names_are_listed_once() {
        let file = scratch("names.txt", b"a\nb\n\na\nc\nb\n");
        let (names, repeated) = read_names(&file).expect("names");
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(repeated, 2);
    }

    #[test]
    fn a_line_cut_off_is_dropped_from_the_file_and_the_count() {
        let line = |object: &str| {
            format!(
                r#"{{"object":"{object}","url":"https://s/{object}","expires_at":"2026-01-01T00:00:00Z"}}"#
            )
        };
        let text = format!("{}\n{}\n{}", line("a"), line("b"), &line("c")[..20]);
        let file = scratch("out.ndjson", text.as_bytes());
        let progress = resume_point(&file).expect("progress");
        assert_eq!(progress.lines, 2);
        assert_eq!(progress.last.as_deref(), Some("b"));
        assert!(progress.done.contains("a") && !progress.done.contains("c"));
        let kept = std::fs::read_to_string(&file).expect("read");
        assert_eq!(kept, format!("{}\n{}\n", line("a"), line("b")));
    }

    #[test]
    fn a_file_that_is_not_a_manifest_is_refused_untouched() {
        let file = scratch("notes.txt", b"dear diary\n");
        let error = resume_point(&file).expect_err("not a manifest");
        assert!(error.contains("not a manifest line"), "{error}");
        assert_eq!(std::fs::read(&file).expect("read"), b"dear diary\n");
    }

    #[test]
    fn no_file_is_a_fresh_start() {
        let missing = std::env::temp_dir().join(format!("absent-{}", uuid::Uuid::new_v4()));
        let progress = resume_point(&missing).expect("progress");
        assert_eq!(progress.lines, 0);
        assert!(progress.last.is_none());
    }
}
