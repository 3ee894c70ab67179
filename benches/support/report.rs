//! Writing a bench's figures into its own section of BENCHMARKS.md (or RELIABILITY.md).

use std::path::Path;

/// Prints `body` and puts it between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in
/// `repo/BENCHMARKS.md`, replacing what stood there (or appending the section).
#[allow(dead_code, reason = "not every bench writes BENCHMARKS.md")]
pub fn write_section(repo: &Path, name: &str, body: &str) -> Result<(), String> {
    write_section_to(&repo.join("BENCHMARKS.md"), name, body)
}

/// The same for any Markdown file at `path`.
pub fn write_section_to(path: &Path, name: &str, body: &str) -> Result<(), String> {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let section = format!("{begin}\n{body}\n{end}");
    println!("{section}");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (text.find(&begin), text.find(&end)) {
        (Some(start), Some(stop)) => {
            format!("{}{section}{}", &text[..start], &text[stop + end.len()..])
        }
        _ => format!("{}\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
