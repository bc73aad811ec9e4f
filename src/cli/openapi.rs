//! `meshes openapi`: print the OpenAPI 3.1 document of the HTTP API.

use std::process::ExitCode;

/// Prints the document (the same bytes as `schema/openapi.json`).
pub fn run() -> ExitCode {
    super::output::print(&crate::api::openapi::document_text())
}
