//! Checks an uploaded policy before and after compilation: size, that it is a
//! component, and that it imports only what its world allows.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::model::World;

/// The package version this host implements; imports must name it.
pub const PACKAGE: &str = "plugboard:policy";
pub const PACKAGE_VERSION: &str = "0.1.0";

/// Why an upload was refused. Messages are meant for the policy's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("the file is {size} bytes, above the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly binary (no `\\0asm` header)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build the policy with the guest SDK \
         (or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("the component imports `{import}`, which the {world} world does not provide")]
    ForbiddenImport { import: String, world: World },
    #[error("the component does not implement the {expected} world: {detail}")]
    WrongWorld { expected: World, detail: String },
    /// Compiling took more CPU time or memory than one upload may.
    #[error("{0}: the component is too costly to compile")]
    CompileBudget(String),
    /// The compiler could not run (not the component's fault).
    #[error("the compiler failed: {0}")]
    Compiler(String),
    /// Past a structural bound that keeps compiling and instantiating cheap.
    #[error("the component has {found} {what}, at most {limit} are allowed")]
    TooComplex {
        what: &'static str,
        found: u64,
        limit: u64,
    },
}

/// What a component may hold, checked on its bytes before anything compiles
/// it: compile time grows with function size and locals, and every memory
/// and table takes a slot of the shared instance pool.
pub mod bounds {
    /// Core modules inside one component (a Rust policy has three).
    pub const MODULES: u64 = 16;
    /// Linear memories defined in all its modules (a policy needs one).
    pub const MEMORIES: u64 = 2;
    /// Tables defined in all its modules.
    pub const TABLES: u64 = 16;
    /// Function bodies in all its modules.
    pub const FUNCTIONS: u64 = 50_000;
    /// Bytes of one function body.
    pub const FUNCTION_BYTES: u64 = 256 << 10;
    /// Locals of one function.
    pub const LOCALS: u64 = 10_000;
}

/// Checks that need only the bytes, so that hostile input never reaches the compiler.
pub(crate) fn check_bytes(bytes: &[u8], limit: usize) -> Result<(), LoadError> {
    if bytes.len() > limit {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let Some(version) = bytes.strip_prefix(b"\0asm") else {
        return Err(LoadError::NotWasm);
    };
    // The four bytes after the magic: version 1, layer 0 for a core module;
    // version 0x0d, layer 1 for a component (component model binary format).
    match version.get(..4) {
        Some([1, 0, 0, 0]) => Err(LoadError::CoreModule),
        Some([_, _, 1, 0]) => check_structure(bytes),
        _ => Err(LoadError::Invalid(
            "unknown WebAssembly binary version or layer".to_owned(),
        )),
    }
}

/// Counts what the component holds against [`bounds`], in one pass over
/// its sections (nested modules included), without validating or
/// compiling anything.
fn check_structure(bytes: &[u8]) -> Result<(), LoadError> {
    use wasmparser::{Parser, Payload};
    let bound = |what: &'static str, found: u64, limit: u64| {
        if found > limit {
            return Err(LoadError::TooComplex { what, found, limit });
        }
        Ok(())
    };
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.message().to_owned());
    let (mut modules, mut memories, mut tables, mut functions) = (0u64, 0u64, 0u64, 0u64);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } => {
                modules += 1;
                bound("core modules", modules, bounds::MODULES)?;
            }
            Payload::MemorySection(section) => {
                memories += u64::from(section.count());
                bound("memories", memories, bounds::MEMORIES)?;
            }
            Payload::TableSection(section) => {
                tables += u64::from(section.count());
                bound("tables", tables, bounds::TABLES)?;
            }
            Payload::CodeSectionEntry(body) => {
                functions += 1;
                bound("functions", functions, bounds::FUNCTIONS)?;
                let size = u64::try_from(body.range().len()).unwrap_or(u64::MAX);
                bound("bytes in one function", size, bounds::FUNCTION_BYTES)?;
                let mut locals = 0u64;
                for group in body.get_locals_reader().map_err(invalid)? {
                    let (count, _) = group.map_err(invalid)?;
                    locals = locals.saturating_add(u64::from(count));
                    bound("locals in one function", locals, bounds::LOCALS)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The interfaces a world's components may import, by unversioned name.
fn allowed_imports(world: World) -> &'static [&'static str] {
    match world {
        World::Scorer | World::Selector => &["types", "log", "caller-history", "kv"],
        World::Bidder => &["types", "log", "kv"],
    }
}

/// Refuses any import outside the world, naming the first one found.
pub(crate) fn check_imports(
    engine: &Engine,
    component: &Component,
    world: World,
) -> Result<(), LoadError> {
    let allowed = allowed_imports(world);
    for (name, _) in component.component_type().imports(engine) {
        let permitted = name
            .strip_prefix(PACKAGE)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split_once('@'))
            .is_some_and(|(interface, version)| {
                version == PACKAGE_VERSION && allowed.contains(&interface)
            });
        if !permitted {
            return Err(LoadError::ForbiddenImport {
                import: name.to_owned(),
                world,
            });
        }
    }
    Ok(())
}

/// Refuses a component without its world's export, before looking at imports,
/// so that a policy built for another world is named as such.
pub(crate) fn check_exports(
    engine: &Engine,
    component: &Component,
    world: World,
) -> Result<(), LoadError> {
    let exports_it = component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name == world.export_name());
    if exports_it {
        return Ok(());
    }
    Err(wrong_world(engine, component, world, "missing export"))
}

/// Explains a missing or mistyped export: which world the component looks like.
pub(crate) fn wrong_world(
    engine: &Engine,
    component: &Component,
    expected: World,
    cause: &str,
) -> LoadError {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let looks_like = World::ALL
        .into_iter()
        .find(|w| *w != expected && exports.iter().any(|e| e == w.export_name()));
    let detail = match looks_like {
        Some(other) => format!(
            "it exports `{}` (a {other} policy?) instead of `{}`",
            other.export_name(),
            expected.export_name()
        ),
        None if exports.iter().any(|e| e == expected.export_name()) => {
            format!(
                "its `{}` export has the wrong type: {cause}",
                expected.export_name()
            )
        }
        None => format!(
            "it has no `{}` export (exports: {})",
            expected.export_name(),
            if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            }
        ),
    };
    LoadError::WrongWorld { expected, detail }
}
