//! `pollen plugin new`: a plugin project that builds on the first try — a pollster,
//! discoverer or transformer, in Rust (a crate on the SDK, with the small-plugin
//! profile) or Python (componentize-py, with the Python SDK and the contract copied
//! in) — with a minimal working plugin and a README giving the author's loop.

use crate::plugin::{PluginKind, CONTRACT_VERSION};
use std::path::{Path, PathBuf};

/// The componentize-py release the Python projects are built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// A plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust, on the `pollen-sdk` crate.
    Rust,
    /// Python, built with componentize-py, on the Python SDK.
    Python,
}

/// Where a Rust project takes `pollen-sdk` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A checkout's `sdk` folder.
    Path(PathBuf),
    /// Pollen's git repository, at a tag.
    Git {
        /// The repository's URL.
        url: String,
        /// The release tag.
        tag: String,
    },
}

impl SdkSource {
    /// `--sdk`'s value: a URL (`https://…`, `ssh://…`, `git@…`) is the repository at
    /// this release's tag, anything else a checkout's `sdk` folder (or the checkout).
    pub fn parse(text: &str) -> Result<Self, ScaffoldError> {
        if text.contains("://") || text.starts_with("git@") {
            return Ok(Self::Git { url: text.into(), tag: format!("v{}", env!("CARGO_PKG_VERSION")) });
        }
        let path = Path::new(text);
        let sdk = if path.join("sdk").join("Cargo.toml").is_file() { path.join("sdk") } else { path.to_path_buf() };
        if !sdk.join("Cargo.toml").is_file() {
            return Err(ScaffoldError::NoSdk(format!(
                "{text} is neither the SDK's folder nor a checkout of Pollen (no Cargo.toml there)"
            )));
        }
        let absolute = std::fs::canonicalize(&sdk).map_err(|source| ScaffoldError::Io { path: sdk, source })?;
        Ok(Self::Path(absolute))
    }

    /// The checkout this binary was built from, if it is still there.
    pub fn of_this_build() -> Option<Self> {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
        sdk.join("Cargo.toml").is_file().then(|| std::fs::canonicalize(&sdk).ok().map(Self::Path)).flatten()
    }

    fn dependency_line(&self) -> String {
        match self {
            Self::Path(path) => format!("pollen-sdk = {{ path = {} }}", toml_string(&path.display().to_string())),
            Self::Git { url, tag } => {
                format!("pollen-sdk = {{ git = {}, tag = {} }}", toml_string(url), toml_string(tag))
            }
        }
    }
}

/// What to make.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name: its file's stem, its crate, its settings' key.
    pub name: String,
    /// Its kind.
    pub kind: PluginKind,
    /// Its language.
    pub language: Language,
    /// Where a Rust project's SDK comes from (unused for Python).
    pub sdk: Option<SdkSource>,
}

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot name a plugin.
    #[error("`{name}` cannot name a plugin: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The folder is there and not empty.
    #[error("{0} already exists and is not empty: choose another name or --dir")]
    Exists(PathBuf),
    /// No SDK for a Rust project.
    #[error("{0}")]
    NoSdk(String),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks a plugin name: lowercase ASCII letters, digits and `_`, starting with a
/// letter, at most 64 bytes (a crate, a Python module, a file and a YAML key alike).
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why| Err(ScaffoldError::BadName { name: name.into(), why });
    if name.is_empty() || name.len() > 64 {
        return bad("give 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("start it with a lowercase letter");
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return bad("use lowercase letters, digits and `_` only (e.g. `my_meter`)");
    }
    Ok(())
}

/// Writes the project into `dir` (made if absent; refused if it has files) and
/// returns the files written, relative to it.
pub fn create(plan: &NewPlugin, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_name(&plan.name)?;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let files = match plan.language {
        Language::Rust => rust_files(plan)?,
        Language::Python => python_files(plan),
    };
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(&relative);
        let io = |source| ScaffoldError::Io { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
        if relative.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
        written.push(PathBuf::from(relative));
    }
    Ok(written)
}

/// The built artifact, relative to the project.
pub fn artifact(plan: &NewPlugin) -> String {
    match plan.language {
        Language::Rust => format!("target/wasm32-wasip2/release/{}.wasm", plan.name),
        Language::Python => format!("{}.wasm", plan.name),
    }
}

/// The command that builds it, run in the project.
pub fn build_command(plan: &NewPlugin) -> &'static str {
    match plan.language {
        Language::Rust => "cargo build --release",
        Language::Python => "./build.sh",
    }
}

/// The `pollen plugin test` arguments after the file that exercise the new plugin.
pub fn test_arguments(plan: &NewPlugin) -> &'static str {
    match plan.kind {
        PluginKind::Pollster => "--grant hypervisor",
        PluginKind::Discoverer => "--grant hypervisor --meter cpu",
        PluginKind::Transformer => "--meter cpu --param factor=2",
    }
}

type Files = Vec<(String, String)>;

fn rust_files(plan: &NewPlugin) -> Result<Files, ScaffoldError> {
    let sdk = plan.sdk.clone().or_else(SdkSource::of_this_build).ok_or_else(|| {
        ScaffoldError::NoSdk(
            "say where the Rust SDK comes from: --sdk /path/to/pollen (a checkout) or --sdk <the URL of Pollen's \
             git repository> (this release's tag)"
                .into(),
        )
    })?;
    let source = match plan.kind {
        PluginKind::Pollster => include_str!("templates/rust/pollster.rs"),
        PluginKind::Discoverer => include_str!("templates/rust/discoverer.rs"),
        PluginKind::Transformer => include_str!("templates/rust/transformer.rs"),
    };
    let fill = |text: &str| fill(text, plan, &[("sdk_dependency", &sdk.dependency_line())]);
    Ok(vec![
        ("Cargo.toml".into(), fill(include_str!("templates/rust/Cargo.toml"))),
        (".cargo/config.toml".into(), fill(include_str!("templates/rust/cargo-config.toml"))),
        ("src/lib.rs".into(), fill(source)),
        ("README.md".into(), readme(plan, include_str!("templates/rust/notes.md"))),
        (".gitignore".into(), "/target\n".into()),
    ])
}

/// The contract's files, as a Python project's `wit/deps/` holds them.
const CONTRACT_WIT: &[(&str, &str)] = &[
    ("pollen/types.wit", include_str!("../../../wit/types.wit")),
    ("pollen/host.wit", include_str!("../../../wit/host.wit")),
    ("pollen/worlds.wit", include_str!("../../../wit/worlds.wit")),
    ("cli/cli.wit", include_str!("../../../wit/deps/cli/cli.wit")),
    ("clocks/clocks.wit", include_str!("../../../wit/deps/clocks/clocks.wit")),
    ("filesystem/filesystem.wit", include_str!("../../../wit/deps/filesystem/filesystem.wit")),
    ("http/http.wit", include_str!("../../../wit/deps/http/http.wit")),
    ("io/io.wit", include_str!("../../../wit/deps/io/io.wit")),
    ("random/random.wit", include_str!("../../../wit/deps/random/random.wit")),
    ("sockets/sockets.wit", include_str!("../../../wit/deps/sockets/sockets.wit")),
];

/// The Python SDK's modules.
pub const PYTHON_SDK: &[(&str, &str)] = &[
    ("__init__.py", include_str!("../../../sdk/python/pollen_sdk/__init__.py")),
    ("_common.py", include_str!("../../../sdk/python/pollen_sdk/_common.py")),
    ("pollster.py", include_str!("../../../sdk/python/pollen_sdk/pollster.py")),
    ("discoverer.py", include_str!("../../../sdk/python/pollen_sdk/discoverer.py")),
    ("transformer.py", include_str!("../../../sdk/python/pollen_sdk/transformer.py")),
];

fn python_files(plan: &NewPlugin) -> Files {
    let (app, world) = match plan.kind {
        PluginKind::Pollster => {
            (include_str!("templates/python/pollster.py"), include_str!("templates/python/world-pollster.wit"))
        }
        PluginKind::Discoverer => {
            (include_str!("templates/python/discoverer.py"), include_str!("templates/python/world-discoverer.wit"))
        }
        PluginKind::Transformer => {
            (include_str!("templates/python/transformer.py"), include_str!("templates/python/world-transformer.wit"))
        }
    };
    let package = plan.name.replace('_', "-");
    let fill = |text: &str| fill(text, plan, &[("package", &package)]);
    let mut files: Files = vec![
        ("app.py".into(), fill(app)),
        ("wit/world.wit".into(), fill(world)),
        ("build.sh".into(), fill(include_str!("templates/python/build.sh"))),
        ("README.md".into(), readme(plan, include_str!("templates/python/notes.md"))),
        (".gitignore".into(), "/*.wasm\n__pycache__/\n".into()),
    ];
    files.extend(CONTRACT_WIT.iter().map(|(path, text)| (format!("wit/deps/{path}"), (*text).to_string())));
    files.extend(PYTHON_SDK.iter().map(|(path, text)| (format!("pollen_sdk/{path}"), (*text).to_string())));
    files
}

fn readme(plan: &NewPlugin, notes: &str) -> String {
    let (what, grant_hint) = match plan.kind {
        PluginKind::Pollster => (
            "It measures one meter on every instance of this host.",
            format!(
                "grant it the hypervisor (`agent.plugins.{}.grants: [hypervisor]`) and name its meter in a source",
                plan.name
            ),
        ),
        PluginKind::Discoverer => (
            "It finds this host's running domains, for the pollsters of the sources that name it.",
            format!(
                "grant it the hypervisor (`agent.plugins.{0}.grants: [hypervisor]`) and name it in a source \
                 (`discovery: [{0}]`)",
                plan.name
            ),
        ),
        PluginKind::Transformer => (
            "It scales the samples of the sinks that list it.",
            format!("list it in a sink (`transformers: [{{name: {}, parameters: {{factor: 2}}}}]`)", plan.name),
        ),
    };
    let language = match plan.language {
        Language::Rust => "Rust",
        Language::Python => "Python",
    };
    let notes = fill(notes, plan, &[("module", &plan.kind.to_string())]);
    fill(
        include_str!("templates/README.md"),
        plan,
        &[
            ("language", language),
            ("what", what),
            ("build", build_command(plan)),
            ("wasm", &artifact(plan)),
            ("test_args", test_arguments(plan)),
            ("grant_hint", &grant_hint),
            ("language_notes", notes.trim_end()),
        ],
    )
}

/// `template` with `{{key}}` replaced: the plan's name, kind, contract version and
/// componentize-py version, then `extra`.
fn fill(template: &str, plan: &NewPlugin, extra: &[(&str, &str)]) -> String {
    let kind = plan.kind.to_string();
    let fixed = [
        ("name", plan.name.as_str()),
        ("kind", kind.as_str()),
        ("contract", CONTRACT_VERSION),
        ("componentize_py", COMPONENTIZE_PY_VERSION),
    ];
    fixed
        .iter()
        .chain(extra)
        .fold(template.to_string(), |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value))
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_a_crate_a_module_and_a_file() {
        assert!(check_name("my_meter2").is_ok());
        for bad in ["", "My", "2x", "a-b", "a.b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("a-b").unwrap_err().to_string().contains("`_` only"));
    }

    #[test]
    fn every_placeholder_is_filled() {
        for language in [Language::Rust, Language::Python] {
            for kind in [PluginKind::Pollster, PluginKind::Discoverer, PluginKind::Transformer] {
                let plan = NewPlugin {
                    name: "my_meter".into(),
                    kind,
                    language,
                    sdk: Some(SdkSource::Git { url: "https://example.org/pollen".into(), tag: "v0.1.0".into() }),
                };
                let files = match language {
                    Language::Rust => rust_files(&plan).unwrap(),
                    Language::Python => python_files(&plan),
                };
                for (path, text) in files {
                    assert!(!text.contains("{{"), "{language:?} {kind}: {path} keeps a placeholder");
                }
            }
        }
    }

    #[test]
    fn the_sdk_is_a_path_or_the_repository_at_this_release() {
        let git = SdkSource::parse("https://example.org/pollen.git").unwrap();
        assert_eq!(
            git.dependency_line(),
            format!(
                "pollen-sdk = {{ git = \"https://example.org/pollen.git\", tag = \"v{}\" }}",
                env!("CARGO_PKG_VERSION")
            )
        );
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let Ok(SdkSource::Path(path)) = SdkSource::parse(&checkout.display().to_string()) else { panic!() };
        assert!(path.join("Cargo.toml").is_file() && path.ends_with("sdk"));
        assert!(SdkSource::parse("/nonexistent").unwrap_err().to_string().contains("neither"));
    }
}
