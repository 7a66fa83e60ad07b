//! The Models view's backend: the catalog judged against this machine (minibar-catalog,
//! minibar-fit), the local library (minibar-hub), downloads and quantization.

pub mod catalog;
pub mod downloads;
pub mod folders;
pub mod hub_search;
pub mod library;
pub mod memory;
pub mod quantize;
pub mod what_if;
