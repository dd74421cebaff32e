//! What a component file says of itself, read without compiling it: its top-level
//! imports and exports (which world it implements, what it asks for) and the size of
//! its largest function. The loader refuses on these before it spends any time
//! compiling (a single function of megabytes takes cranelift minutes).

use wasmparser::{Parser, Payload};

/// A component's outline.
#[derive(Debug, Default)]
pub(crate) struct Outline {
    /// Its top-level imports, e.g. `pollen:plugin/hypervisor@0.2.0`.
    pub imports: Vec<String>,
    /// Its top-level exports, e.g. `pollen:plugin/pollster@0.2.0`.
    pub exports: Vec<String>,
    /// Bytes of its largest function body, in any of its core modules.
    pub largest_function: usize,
}

/// Reads the outline of a component's bytes (its header already checked: a component,
/// not a core module); the error says where it is malformed.
pub(crate) fn outline(bytes: &[u8]) -> Result<Outline, String> {
    let mut outline = Outline::default();
    // Nested modules and components come inline; depth 1 is the file's own level.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|error| error.to_string())? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    outline.imports.push(import.map_err(|e| e.to_string())?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    outline.exports.push(export.map_err(|e| e.to_string())?.name.name.to_string());
                }
            }
            Payload::CodeSectionEntry(body) => {
                outline.largest_function = outline.largest_function.max(body.range().len());
            }
            _ => {}
        }
    }
    Ok(outline)
}
