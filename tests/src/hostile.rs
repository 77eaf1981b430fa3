//! Hostile components made in the test, past or within the host's bounds.

/// A component holding `module` (not instantiated: the bounds are checked
/// on the bytes, before anything compiles them).
pub fn component_around(module: &wasm_encoder::Module) -> Vec<u8> {
    let mut component = wasm_encoder::Component::new();
    component.section(&wasm_encoder::ModuleSection(module));
    component.finish()
}

/// A module of `functions` functions of `(i32) -> i32`, each `ops` additions
/// long: within every structural bound, costly only to compile (1,000 by
/// 1,000, 8 MB, took 82 s of CPU here).
pub fn slow_to_compile(functions: u32, ops: usize) -> wasm_encoder::Module {
    use wasm_encoder::{CodeSection, Function, FunctionSection, Instruction, TypeSection, ValType};
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut declared = FunctionSection::new();
    let mut code = CodeSection::new();
    for _ in 0..functions {
        declared.function(0);
        let mut body = Function::new([]);
        for n in 0..ops {
            body.instruction(&Instruction::LocalGet(0));
            body.instruction(&Instruction::I32Const(n as i32));
            body.instruction(&Instruction::I32Add);
            body.instruction(&Instruction::LocalSet(0));
        }
        body.instruction(&Instruction::LocalGet(0));
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut module = wasm_encoder::Module::new();
    module.section(&types).section(&declared).section(&code);
    module
}
