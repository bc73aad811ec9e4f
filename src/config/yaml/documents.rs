//! A file of several YAML documents: which `---` makes it so.

use super::ParseError;
use crate::config::diagnostic::{Code, Issue, Path};
use granit_parser::{Event, Parser};

/// How many documents `text` holds, and where the second starts (its line,
/// and whether a `---` starts it rather than the end of a `...`).
fn count(text: &str) -> (usize, Option<(usize, bool)>) {
    let mut documents = 0;
    let mut second = None;
    let options = granit_parser::options! { emit_comments: false };
    for item in Parser::new_from_str_with_options(text, options) {
        let Ok((event, span)) = item else { break };
        if let Event::DocumentStart(explicit, _) = event {
            documents += 1;
            if documents == 2 {
                second = Some((span.start.line(), explicit));
            }
        }
    }
    (documents, second)
}

/// The error for a file of more than one document, at the `---` that
/// starts the second. A bare `---` at the end starts an empty second
/// document: refused too, in a file as in a directory.
pub(super) fn error(text: &str) -> ParseError {
    let (documents, second) = count(text);
    let documents = documents.max(2);
    let (line, explicit) = second.unwrap_or((1, true));
    let fix = if explicit {
        format!("remove the `---` at line {line}")
    } else {
        format!("a document ends with `...` before line {line}: remove what follows it")
    };
    let message = format!(
        "the file holds {documents} YAML documents; a meshes config file is one document: {fix} (move any other document to a file of its own)"
    );
    (Issue::error(Code::YamlSyntax, Path::root(), message), line, 1)
}
