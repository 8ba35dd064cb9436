//! Giving the allocator's free memory back to the system after plugin
//! compilation. Cranelift allocates tens of MiB while compiling a component
//! and frees them; glibc keeps freed memory in per-thread arenas and returns
//! only the top of each, so without a trim the gateway would sit at its
//! compile-time peak (about 25 MiB above its working set with the bundled
//! plugins).

/// Ask glibc to return every arena's free pages (`malloc_trim(0)`). Call it
/// off the request path: it walks and briefly locks each arena. Returns
/// whether anything was released; elsewhere than glibc it does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "malloc_trim is FFI; it takes no pointers and glibc serialises it with every allocator call"
)]
pub(crate) fn release() -> bool {
    // SAFETY: `malloc_trim` has no preconditions; `pad = 0` is valid.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators return memory themselves or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release() -> bool {
    false
}

/// Serve allocations of 1 MiB and more from their own mappings, returned
/// to the system when freed. glibc's default threshold grows to the largest
/// block freed so far (up to 32 MiB), after which large plugin outputs and
/// bodies are carved from arenas and their pages can stay resident; a fixed
/// threshold keeps the resident size at the working set. Idempotent.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "mallopt is FFI; it takes no pointers and glibc serialises it with every allocator call"
)]
pub(crate) fn map_large_blocks() {
    // SAFETY: `mallopt` has no preconditions; M_MMAP_THRESHOLD accepts any
    // size up to 32 MiB.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Other allocators have no such setting.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn map_large_blocks() {}
