//! Zero-initialised arrays that large tables back with huge pages.
//!
//! # Why
//!
//! A hit touches one slot and, one time in four, one frequency-sketch
//! block, each at a pseudorandom place in an array of tens of megabytes at
//! 1M entries. With 4 KiB pages, a hot set of 1,000 keys touches a
//! thousand pages per array, more than the TLB holds, so hits paid page
//! walks. On Linux, arrays of 2 MiB or more are therefore mapped straight
//! from the kernel (`mmap`), aligned to 2 MiB and advised
//! (`madvise(MADV_HUGEPAGE)`) to be backed by transparent huge pages, one
//! TLB entry per 2 MiB, before any page of them is touched. (Through
//! `malloc` the advice came too late: a heap chunk's pages are often
//! already mapped, and measured, none became huge.) The advice is only
//! that: where the kernel declines it, the array is ordinary memory.

#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ptr::NonNull;

/// Largest array, in elements: far past any real allocation, and small
/// enough that sizes never overflow.
pub(crate) const MAX_LEN: usize = 1 << 32;

/// Arrays at least this large are aligned to it and advised to use
/// transparent huge pages.
const HUGE_PAGE: usize = 2 << 20;

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for such types (atomics, structs of them and of null
/// pointers).
pub(crate) unsafe trait ZeroValid {}

// SAFETY: an atomic integer of zero bytes is zero.
unsafe impl ZeroValid for std::sync::atomic::AtomicU8 {}
// SAFETY: as above.
unsafe impl ZeroValid for std::sync::atomic::AtomicU64 {}

/// `len` values of `T` (at least one, at most [`MAX_LEN`]), all bytes zero
/// at first.
pub(crate) struct Zeroed<T> {
    ptr: NonNull<T>,
    len: usize,
    /// Whether the memory came from `mapping::map` (else from the global
    /// allocator), which decides how it is given back.
    mapped: bool,
}

impl<T> Zeroed<T> {
    fn layout(len: usize) -> Layout {
        #[allow(clippy::expect_used)]
        // At most 2^32 elements of a small type: always a valid layout.
        Layout::array::<T>(len).expect("an array layout is valid")
    }

    pub(crate) fn new(len: usize) -> Self
    where
        T: ZeroValid,
    {
        let len = len.clamp(1, MAX_LEN);
        let layout = Self::layout(len);
        if layout.size() >= HUGE_PAGE {
            if let Some(ptr) = mapping::map(layout.size()) {
                return Self {
                    ptr: ptr.cast(),
                    len,
                    mapped: true,
                };
            }
        }
        let layout = layout.align_to(align_of::<T>()).unwrap_or(layout);
        // SAFETY: the layout's size is non-zero (`len` ≥ 1, and a
        // zero-sized `T` is not `ZeroValid`).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        Self {
            ptr,
            len,
            mapped: false,
        }
    }
}

impl<T> std::ops::Deref for Zeroed<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` zeroed values were allocated at `ptr`, and zero
        // bytes are a valid `T` (`ZeroValid`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Zeroed<T> {
    fn drop(&mut self) {
        // SAFETY: the values are dropped in place first, then the memory is
        // freed with the layout it was allocated with.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            if self.mapped {
                mapping::unmap(self.ptr.cast(), Self::layout(self.len).size());
            } else {
                std::alloc::dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len));
            }
        }
    }
}

// SAFETY: `Zeroed<T>` owns its values like a `Box<[T]>`.
unsafe impl<T: Send> Send for Zeroed<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Zeroed<T> {}

impl<T> std::fmt::Debug for Zeroed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zeroed").field("len", &self.len).finish()
    }
}

#[cfg(target_os = "linux")]
mod mapping {
    use super::HUGE_PAGE;
    use std::ptr::NonNull;

    fn rounded(size: usize) -> usize {
        size.div_ceil(HUGE_PAGE) * HUGE_PAGE
    }

    /// Zeroed memory of `size` bytes aligned to a huge page, advised to be
    /// backed by huge pages; `None` if the kernel refuses the mapping.
    pub(super) fn map(size: usize) -> Option<NonNull<u8>> {
        let size = rounded(size);
        let span = size + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // named or changed.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE);
        let head = aligned - start;
        let tail = span - head - size;
        // SAFETY: both ranges lie inside the mapping just made and outside
        // the aligned part that is kept; the advice only changes backing.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + size) as *mut libc::c_void, tail);
            }
            libc::madvise(aligned as *mut libc::c_void, size, libc::MADV_HUGEPAGE);
        }
        NonNull::new(aligned as *mut u8)
    }

    /// # Safety
    /// `ptr` and `size` are those of one earlier [`map`], not yet unmapped.
    pub(super) unsafe fn unmap(ptr: NonNull<u8>, size: usize) {
        // SAFETY: the caller passes the pointer and size of one live mapping
        // made by `map` (which rounded the size the same way), and nothing
        // refers to its memory any more.
        unsafe { libc::munmap(ptr.as_ptr().cast(), rounded(size)) };
    }
}

#[cfg(not(target_os = "linux"))]
mod mapping {
    use std::ptr::NonNull;

    pub(super) fn map(_size: usize) -> Option<NonNull<u8>> {
        None
    }

    pub(super) unsafe fn unmap(_ptr: NonNull<u8>, _size: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn small_and_huge_arrays_start_zeroed_and_are_writable() {
        for len in [1, 100, (4 << 20) / 8] {
            let a: Zeroed<AtomicU64> = Zeroed::new(len);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|x| x.load(Ordering::Relaxed) == 0));
            a[len - 1].store(7, Ordering::Relaxed);
            assert_eq!(a[len - 1].load(Ordering::Relaxed), 7);
        }
    }
}
