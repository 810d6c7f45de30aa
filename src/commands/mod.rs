//! Subcommands whose work is more than wiring (their argument structs and
//! output), kept out of `main.rs`.

pub mod calendar;
pub mod fetch;
pub mod jobs;
pub mod market;
pub mod prices;
pub mod status;
