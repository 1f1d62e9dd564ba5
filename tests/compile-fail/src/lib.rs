//! Nothing here: the crate exists for `tests/illegal_transitions.rs`, whose cases under `ui/`
//! must not compile.
