//! The models installed on this machine, from minibar-hub's library.

use minibar_hub::library::{list_models, LibraryPaths, LocalModel};

/// Every complete model in the hub cache and Minibar's store; an unreadable library is empty.
pub(crate) fn installed(paths: &LibraryPaths) -> Vec<LocalModel> {
    list_models(paths)
        .map(|l| l.models.into_iter().filter(|m| m.complete).collect())
        .unwrap_or_default()
}
