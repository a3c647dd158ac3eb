//! The global allocator the binary installs with the `mimalloc` feature (the default):
//! mimalloc, called the way the system allocator is.
//!
//! The `mimalloc` crate's own `GlobalAlloc` passes every allocation to `mi_malloc_aligned`,
//! whose fast path holds only when the next free block happens to be aligned and small;
//! otherwise it takes a generic path. Rust asks for an alignment of 8 or 16 bytes almost
//! always, which a plain `mi_malloc` gives anyway (its blocks are two words aligned from 16
//! bytes up), so those go there, as Rust's `System` does with `malloc`. Measured reason:
//! about 95 instructions per allocation through `mi_malloc_aligned`, 12 allocations per
//! proxied request (callgrind, BENCHMARKS.md "Allocator and memory returned").

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc as the global allocator.
#[derive(Debug, Clone, Copy, Default)]
pub struct MiMalloc;

/// The alignment every `mi_malloc` block of at least this size has (`MI_MAX_ALIGN_SIZE`;
/// kept to one word where pointers are narrower, without measuring there).
const PLAIN_ALIGN: usize = if cfg!(target_pointer_width = "64") {
    16
} else {
    8
};

/// A plain `mi_malloc` of `size` bytes is aligned enough for `align`.
fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every pointer returned comes from mimalloc, aligned as `layout` asks (directly, or
// by `plain`: mimalloc aligns blocks of `PLAIN_ALIGN` bytes and more to `PLAIN_ALIGN`), and
// every pointer freed or resized was returned by it; `mi_free` and `mi_realloc` take blocks
// from either kind of allocation.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see the impl.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment Rust asks for comes back aligned, zeroed when asked, and
    /// keeps its bytes through a realloc that changes its kind (plain to aligned and back).
    #[test]
    #[allow(unsafe_code)]
    fn blocks_are_aligned_as_asked() {
        let a = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1usize, 3, 8, 12, 16, 24, 40, 100, 1000, 5000, 70_000] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: a non-zero size; each block is freed once, with its layout.
                unsafe {
                    let p = a.alloc_zeroed(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == 0));
                    p.write_bytes(0xab, size);
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "realloc {size} align {align}");
                    assert!(std::slice::from_raw_parts(grown, size)
                        .iter()
                        .all(|b| *b == 0xab));
                    a.dealloc(grown, Layout::from_size_align_unchecked(size * 3, align));
                    let q = a.alloc(layout);
                    assert_eq!(q as usize % align, 0);
                    a.dealloc(q, layout);
                }
            }
        }
    }
}
