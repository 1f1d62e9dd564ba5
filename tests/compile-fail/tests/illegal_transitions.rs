//! Skipping a stage, or building one from a record outside the login machine, does not
//! compile. trybuild compares each case's error with its `.stderr` file.

#[test]
fn illegal_stage_transitions_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
