//! Skipping a stage does not compile.

#[test]
fn illegal_stage_transitions_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
