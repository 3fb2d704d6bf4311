//! Giving freed memory back to the system after a maintenance pass.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena for reuse, and
//! returns little of it. A compaction allocates merge and write buffers in a blocking
//! thread of its own and frees them at the end; trimming then hands them back instead of
//! leaving them counted in the server's resident memory until some later reuse.
//!
//! Not after flushes: trimming there made the heads' next generation fault its pages in
//! afresh, which cost a third of the ingest rate in the benchmark (on a 2-core VM), while
//! the memory it saved stays bounded anyway (the arenas settle once they hold two
//! generations of heads).

/// Returns the allocator's free memory to the system (glibc only; elsewhere a no-op).
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free pages of the allocator's own arenas; it
    // takes each arena's lock, so it is safe to call while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}
