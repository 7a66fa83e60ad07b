//! A length field in a GGUF file cannot make the reader reserve more memory than the file has
//! bytes left: the largest single allocation while reading is measured by a counting allocator
//! (alone in this test binary, so no other test's allocations are counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use minibar_text::{GgufError, GgufMetadata};

/// The system allocator, remembering the largest block asked for.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[test]
fn an_array_length_reserves_at_most_the_bytes_left() {
    // One key: an array of a million bools whose second element is not 0 or 1. Every element
    // has its byte in the file, so the length passes the bounds check; a reader that reserves
    // `length` values up front asks for 32 MB for this 1 MB file before finding the bad byte.
    let n: u64 = 1_000_000;
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes()); // tensors
    bytes.extend(1u64.to_le_bytes()); // key/value pairs
    bytes.extend(3u64.to_le_bytes());
    bytes.extend(b"arr");
    bytes.extend(9u32.to_le_bytes()); // array
    bytes.extend(7u32.to_le_bytes()); // of bool
    bytes.extend(n.to_le_bytes());
    bytes.push(1);
    bytes.push(2);
    bytes.resize(bytes.len() + n as usize, 0);
    let len = bytes.len();

    LARGEST.store(0, Ordering::SeqCst);
    let result = GgufMetadata::from_reader(&bytes[..], len as u64, Path::new("big.gguf"));
    let largest = LARGEST.load(Ordering::SeqCst);

    assert!(
        matches!(result, Err(GgufError::Corrupt { .. })),
        "{result:?}"
    );
    assert!(
        largest <= len,
        "reserved {largest} bytes at once for a {len}-byte file"
    );
}
