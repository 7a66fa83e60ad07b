//! The commands the UI calls, one module per area. Every one is listed in `build.rs` (its
//! permission) and in `crate::bindings::builder` (its TypeScript binding).

pub mod app;
pub mod bench;
pub mod chat;
pub mod models;
